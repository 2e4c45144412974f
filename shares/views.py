"""Share endpoints and the invite link page: parse, call a shares service, render, announce."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from gateway_site.auth import Principal
from gateway_site.errors import BadRequest, NotFound, json_response
from gateway_site.jsonbody import json_object
from gateway_site.requests import ApiRequest
from gateway_site.views import api_view
from relay import delivery
from shares import services


def _principal(request: ApiRequest) -> Principal:
    return request.principal


@api_view("POST")
def invites(request: ApiRequest) -> HttpResponse:
    invite = services.invite_create(principal=_principal(request), body=json_object(request, "invalid json body"))
    grant = invite.grant
    return json_response(
        {
            "grantId": grant.grant_id,
            "status": grant.status,
            "inviteUrl": invite.url,
            "inviteTokenExpiresAt": grant.invite_token_expires_at,
            "grantExpiresAt": grant.grant_expires_at,
        },
        status=201,
    )


@api_view("POST")
def accept(request: ApiRequest) -> HttpResponse:
    principal = _principal(request)
    try:
        body = json_object(request, "invalid json body")
    except BadRequest:
        body = None  # the caller's email is checked before the body
    grant = services.invite_accept(principal=principal, body=body)
    async_to_sync(delivery.notify_users)([principal.uid], device_id=grant.device_id, reason="shared")
    return json_response(
        {"grantId": grant.grant_id, "deviceId": grant.device_id, "role": grant.role, "status": grant.status}
    )


@api_view("GET")
def device_grants(request: ApiRequest, device_id: str) -> HttpResponse:
    grants = services.grant_history(principal=_principal(request), device_id=device_id)
    return json_response({"deviceId": device_id.strip(), "grants": grants})


def _ended(result: services.GrantEnded, reason: str) -> HttpResponse:
    if result.changed and result.grantee_uid:
        async_to_sync(delivery.access_ended)(uids=[result.grantee_uid], device_id=result.device_id, reason=reason)
    return json_response({"grantId": result.grant_id, "status": "revoked"})


@api_view("POST")
def revoke(request: ApiRequest, grant_id: str) -> HttpResponse:
    # No body is read: clients may send an empty one with a JSON content type.
    return _ended(services.grant_revoke(principal=_principal(request), grant_id=grant_id), "grant_revoked")


@api_view("POST")
def leave(request: ApiRequest, grant_id: str) -> HttpResponse:
    return _ended(services.grant_leave(principal=_principal(request), grant_id=grant_id), "grant_left")


@never_cache
@api_view("GET")
def share_page(request: HttpRequest, token: str) -> HttpResponse:
    """docs/protocol/decisions.md D2: the page an invite link opens. The console completes the sign-in and accept
    flow."""
    preview = services.invite_preview(token)
    if "application/json" in request.headers.get("Accept", ""):
        # The console's accept view asks for the same facts the page shows.
        if preview is None:
            raise NotFound("invite not found or already used")
        return json_response(
            {
                "deviceName": preview.device_name,
                "ownerEmail": preview.owner_email,
                "status": preview.status,
                "inviteTokenExpiresAt": preview.expires_at,
            },
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )
    response = render(
        request,
        "shares/invite.html",
        {"preview": preview, "token": token, "client_name": settings.GATEWAY.oauth_client_name},
        status=200 if preview else 404,
    )
    response["Referrer-Policy"] = "no-referrer"
    return response
