"""Process plumbing: start-up and shutdown order, embedded servers, helper processes, cron, demo mode."""
