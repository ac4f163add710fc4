from django.contrib import admin

from fastmf.web.training.models import TrainingJob


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "created_by", "created", "finished")
    list_filter = ("status", "kind")
    readonly_fields = [f.name for f in TrainingJob._meta.fields]
