"""``/contacts/{email}``: everything held about an address (GET, and ``/export`` as a
download) and its erasure (DELETE); admin scope, keys not restricted to pools. Both are
recorded in ``contact_audit`` with the key as actor (see :mod:`mailer.contacts`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Response, jsonify

from mailer.contacts import ContactError, ContactStore
from mailer.email_requests import FieldError
from tracking.api.core import bp, conn, key, scope
from tracking.api.problems import ApiProblem, validation
from tracking.api.serialize import jsonable


def _store() -> ContactStore:
    if key().restricted:
        raise ApiProblem("forbidden", "a key restricted to pools cannot read or erase contacts")
    return ContactStore(conn(), f"api-key:{key().id}")


@contextmanager
def _address_checked() -> Iterator[None]:
    try:
        yield
    except ContactError as exc:
        raise validation([FieldError("/email", str(exc))]) from None


def _export(email: str) -> Response:
    with _address_checked():
        data = _store().export(email)
    return jsonify(jsonable(data.document()))


@bp.get("/contacts/<email>")
@scope("admin")
def get_contact(email: str) -> Response:
    return _export(email)


@bp.get("/contacts/<email>/export")
@scope("admin")
def export_contact(email: str) -> Response:
    response = _export(email)
    response.headers["Content-Disposition"] = 'attachment; filename="contact.json"'
    return response


@bp.delete("/contacts/<email>")
@scope("admin")
def erase_contact(email: str) -> Response:
    with _address_checked():
        erasure = _store().erase(email)
    return jsonify({"email_hash": erasure.email_hash, "counts": erasure.counts})
