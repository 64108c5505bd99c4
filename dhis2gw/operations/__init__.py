"""Operations: the submission log, requeue, queue control, API documentation, docs pages and metrics.

``dhis2gw.operations.wiring.install`` mounts the areas and hooks the metrics into the dispatcher
and the site; the HTTP areas themselves live in ``dhis2gw.api.logs``, ``dhis2gw.api.queue`` and
``dhis2gw.api.docs``.
"""
