from django.contrib import admin

from fastmf.web.films.models import Rating


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ("user", "item", "stars", "updated")
    list_filter = ("stars",)
    search_fields = ("user__username", "item")
