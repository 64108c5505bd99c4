"""Test-suite wide settings. Keep reactor-installing imports (klein, txredisapi,
apscheduler.schedulers.twisted) out of this file: see stack-notes pitfall 1."""
