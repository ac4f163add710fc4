"""The site's URLs; errors are pages, or JSON under ``/api/`` (:mod:`fastmf.web.errors`)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from fastmf.web import assets, errors
from fastmf.web.films import api, views
from fastmf.web.training import views as training

urlpatterns = [
    path("", views.home, name="home"),
    path("search/", views.search, name="search"),
    path("films/<str:item>/", views.film, name="film"),
    path("films/<str:item>/rate/", views.rate, name="rate"),
    path("ratings/", views.my_ratings, name="my-ratings"),
    path("recommendations/", views.recommendations, name="recommendations"),
    path("accounts/register/", views.register, name="register"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("data/", training.data, name="data"),
    path("data/figures/<str:folder>/<str:name>", training.figure, name="figure"),
    path("training/", training.training, name="training"),
    path("training/jobs/<int:pk>/", training.job, name="training-job"),
    path("training/jobs/<int:pk>.json", training.job_json, name="training-job-json"),
    path("training/jobs/<int:pk>/cancel/", training.cancel, name="training-cancel"),
    path("api/search", api.search, name="api-search"),
    path("api/similar", api.similar, name="api-similar"),
    path("api/recommend", api.recommend, name="api-recommend"),
    path("api/ratings", api.ratings, name="api-ratings"),
    path("api/ratings/<str:item>", api.rating, name="api-rating"),
    path("admin/", admin.site.urls),
    re_path(r"^static/(?P<path>.+)$", assets.serve, name="static"),
]

handler400 = errors.bad_request
handler403 = errors.permission_denied
handler404 = errors.page_not_found
handler500 = errors.server_error
