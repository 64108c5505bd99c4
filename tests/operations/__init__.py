"""Tests of the operations feature (issue 8): logs, requeue, queue control, docs, OpenAPI, metrics."""
