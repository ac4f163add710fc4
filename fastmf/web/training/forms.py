"""The training form, made from the model's own hyperparameter declaration (``model_class(kind).params``):
every field's type, default, help and range are the model's, and values are checked by the model's checks."""

from __future__ import annotations

from django import forms

from fastmf.common.errors import FastMFError
from fastmf.registry import model_class

#: engine settings that are not hyperparameters of the model's fit
HIDDEN = ("backend", "work_split")


def field_for(p) -> forms.Field:
    common = {"label": p.name, "help_text": f"{p.help} ({p.describe()})", "initial": p.default}
    if p.kind is bool:
        return forms.BooleanField(required=False, **common)
    if p.choices:
        return forms.ChoiceField(choices=[(c, c) for c in p.choices], **common)
    if p.kind is int:
        return forms.IntegerField(required=not p.optional, **common)
    return forms.FloatField(required=not p.optional, **common)


class JobForm(forms.Form):
    holdout = forms.FloatField(
        initial=0.1,
        min_value=0.0,
        max_value=0.5,
        label="validation share",
        help_text="Share of the catalogue's ratings held out to draw the validation RMSE curve (0: train on all; "
        "site users' ratings are always trained on).",
    )

    def __init__(self, kind: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.declared = {n: p for n, p in model_class(kind).params.items() if n not in HIDDEN}
        for name, p in self.declared.items():
            self.fields[name] = field_for(p)
        self.order_fields([*self.declared, "holdout"])

    def clean(self):
        data = super().clean()
        for name, p in self.declared.items():
            if name in data and name not in self.errors:
                try:
                    p.check(data[name], model_class(self.kind).__name__)
                except FastMFError as exc:
                    self.add_error(name, str(exc))
        if data.get("factors") == 0 and "factors" not in self.errors:
            self.add_error("factors", "the site serves models with item factors: at least 1")
        return data

    def params(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.declared}
