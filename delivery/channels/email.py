"""Email through Django's email backends (SMTP by EMAIL_URL), with one-click unsubscribe.

Every message carries List-Unsubscribe with a signed https link and
List-Unsubscribe-Post (RFC 8058), so mail clients show their own unsubscribe
button and a POST to the link revokes email consent at once; Gmail and Yahoo
require both from bulk senders.
"""
import base64
import smtplib
import socket
from email.utils import make_msgid

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.html import escape

from .base import ChannelBackend, DeliveryError, SendResult

_SIGNING_SALT = "tanbih.delivery.email-unsubscribe"

FOOTER = {
    "en": ("You receive this email because you subscribed to our messages. Unsubscribe: {url}",
           'You receive this email because you subscribed to our messages. <a href="{url}">Unsubscribe</a>'),
    "ar": ("تصلك هذه الرسالة لأنك مشترك في رسائلنا. لإلغاء الاشتراك: {url}",
           'تصلك هذه الرسالة لأنك مشترك في رسائلنا. <a href="{url}">إلغاء الاشتراك</a>'),
}


def unsubscribe_signature(code):
    digest = salted_hmac(_SIGNING_SALT, code, algorithm="sha256").digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def is_valid_unsubscribe_signature(code, signature):
    return constant_time_compare(unsubscribe_signature(code), signature or "")


def unsubscribe_url(message):
    """The signed one-click unsubscribe link for `message` (no login: the signature is the credential)."""
    return settings.SITE_URL + reverse("delivery-webhooks:email-unsubscribe",
                                       args=[message.code, unsubscribe_signature(message.code)])


def _with_footer(text, html, url, locale):
    """Add an unsubscribe line unless the body links the unsubscribe URL already."""
    text_footer, html_footer = FOOTER["ar" if (locale or "").lower().startswith("ar") else "en"]
    if url not in text:
        text = f"{text.rstrip()}\n\n--\n{text_footer.format(url=url)}\n"
    if html and url not in html and escape(url) not in html:
        footer = f'<p style="font-size:12px;color:#666">{html_footer.format(url=escape(url))}</p>'
        html = html.replace("</body>", f"{footer}</body>") if "</body>" in html else html + footer
    return text, html


class EmailBackend(ChannelBackend):
    channel = "email"
    provider = "smtp"

    def is_configured(self):
        return bool(getattr(settings, "EMAIL_URL", ""))

    def build(self, message, connection=None):
        """The EmailMultiAlternatives for `message`: subject, text and HTML, unsubscribe headers."""
        content = message.content or {}
        url = unsubscribe_url(message)
        locale = message.locale or message.subscriber.locale
        text, html = _with_footer(content.get("text", ""), content.get("html", ""), url, locale)
        domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or "localhost"
        email = EmailMultiAlternatives(
            subject=content.get("subject", ""), body=text, from_email=settings.DEFAULT_FROM_EMAIL,
            to=[message.to or message.subscriber.email], connection=connection,
            headers={
                "List-Unsubscribe": f"<{url}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "Message-ID": make_msgid(idstring=message.code, domain=domain),
                "X-Tanbih-Message": message.code,
            },
        )
        if html:
            email.attach_alternative(html, "text/html")
        return email

    def send(self, message):
        [result] = self.send_many([message])
        if isinstance(result, DeliveryError):
            raise result
        return result

    def send_many(self, messages):
        """One SMTP connection for the whole batch; a refused recipient fails only its own message."""
        results = []
        connection = get_connection(fail_silently=False)
        try:
            connection.open()
        except OSError as error:  # smtplib's errors are OSErrors too
            # Refused, bad credentials, TLS trouble: the server, not these messages; try again later.
            return [DeliveryError(f"Could not open the mail connection: {error}", code="smtp_connect")
                    for _ in messages]
        try:
            for message in messages:
                try:
                    email = self.build(message, connection)
                    email.send()
                    results.append(SendResult(provider_id=email.extra_headers["Message-ID"], status="sent"))
                except OSError as error:
                    results.append(_delivery_error(error))
                    if isinstance(error, smtplib.SMTPServerDisconnected) or not isinstance(error, smtplib.SMTPException):
                        # The connection is gone: reopen for the rest of the batch.
                        connection.close()
                        try:
                            connection.open()
                        except OSError as reopen_error:
                            results.extend(_delivery_error(reopen_error)
                                           for _ in messages[len(results):])
                            break
        finally:
            connection.close()
        return results


def _delivery_error(error):
    """SMTP 5xx is permanent (no such mailbox, refused); 4xx, timeouts and broken connections are transient."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _text in error.recipients.values()]
        code = codes[0] if codes else 0
        return DeliveryError(f"The mail server refused the recipient: {error.recipients}",
                             permanent=500 <= code < 600, code=str(code))
    if isinstance(error, smtplib.SMTPResponseException):
        return DeliveryError(f"The mail server answered {error.smtp_code}: {error.smtp_error!r}",
                             permanent=500 <= error.smtp_code < 600, code=str(error.smtp_code))
    if isinstance(error, (socket.timeout, TimeoutError)):
        return DeliveryError(f"The mail server did not answer in time: {error}", code="timeout")
    return DeliveryError(f"Could not talk to the mail server: {error}", code="smtp")
