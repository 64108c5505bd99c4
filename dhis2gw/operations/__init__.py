"""Operations: the submission log, requeue, queue control, API documentation, docs pages and metrics.

The composition root (``dhis2gw.wiring.root``) registers the metrics' observers on the
dispatcher's ``DeliveryEvents`` and the site; the HTTP areas live in ``dhis2gw.api`` (``logs``,
``queue``, ``reports``, ``docs``, ``metrics``).
"""
