"""The Redis side: connections and the queue of submission ids (Redis is only the feed)."""
