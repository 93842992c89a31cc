"""The one exception a service raises to refuse a request, whichever API carries it."""


class ServiceError(Exception):
    """A refusal: HTTP ``status``, human ``message``, envelope ``code`` and extra fields.

    REST answers it with the error envelope (``rotordream.web.api.base``); an
    ``extra`` ``retry_after`` also becomes a Retry-After header.
    """

    def __init__(self, status, message, code="BAD_REQUEST", **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra
