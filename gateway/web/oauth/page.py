"""What the browser shows at the end of a sign-in: one small page, Russian or English
(``CALLGUARD_LANG``), no script of its own (the gateway's CSP allows none inline).

The extension's content script on ``/auth/callback`` reads ``#callguard-signin``: ``data-state``
``ok`` with ``data-token``, ``data-user-id``, ``data-expires-at``, or ``error`` with
``data-error`` (the code of the JSON error body) and the message shown to the user.
"""

from __future__ import annotations

from html import escape

from starlette.responses import HTMLResponse

TEXTS = {
    "ru": {
        "title": "Callguard: вход через Битрикс24",
        "ok": "Вход выполнен: пользователь {user}. Расширение Callguard получило ключ; "
        "эту вкладку можно закрыть.",
        "error": "Вход не удался.",
        "again": "Попробуйте войти ещё раз из настроек расширения Callguard. Если ошибка "
        "повторяется, сообщите администратору портала этот текст:",
    },
    "en": {
        "title": "Callguard: sign-in through Bitrix24",
        "ok": "Signed in as user {user}. The Callguard extension has its key; you may close "
        "this tab.",
        "error": "The sign-in failed.",
        "again": "Sign in again from the Callguard extension's options. If it keeps failing, "
        "give your portal administrator this text:",
    },
}

# Messages of refusals, by error code: the JSON bodies carry the English one, the page the
# CALLGUARD_LANG one. Each string is one language.
MESSAGES_RU = {
    "bad_state": "Ссылка входа недействительна, устарела или уже использована.",
    "wrong_portal": "Вход выполнен в другой портал Битрикс24, не в тот, что обслуживает Callguard.",
    "portal_refused": "Битрикс24 не подтвердил вход.",
    "busy": "Слишком много одновременных входов; попробуйте через минуту.",
    "inactive_user": "Пользователь портала отключён.",
}


def page(
    lang: str,
    status: int,
    *,
    user_id: str | None = None,
    token: str | None = None,
    expires_at: int | None = None,
    error: str | None = None,
    message: str = "",
) -> HTMLResponse:
    texts = TEXTS.get(lang, TEXTS["ru"])
    if error is None:
        attrs = (
            f'data-state="ok" data-token="{escape(token or "")}" '
            f'data-user-id="{escape(user_id or "")}" data-expires-at="{expires_at or 0}"'
        )
        body = f"<p>{escape(texts['ok'].format(user=user_id))}</p>"
    else:
        shown = MESSAGES_RU.get(error, "") if lang == "ru" else ""
        attrs = f'data-state="error" data-error="{escape(error)}"'
        body = (
            f"<p><strong>{escape(texts['error'])}</strong> {escape(shown)}</p>"
            f"<p>{escape(texts['again'])}</p><pre>{escape(error)}: {escape(message)}</pre>"
        )
    html = (
        f'<!doctype html><html lang="{escape(lang)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(texts['title'])}</title></head><body>"
        f'<main id="callguard-signin" {attrs}><h1>{escape(texts["title"])}</h1>{body}</main>'
        f"</body></html>"
    )
    return HTMLResponse(
        html,
        status,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )
