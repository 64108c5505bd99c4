"""Built-in submission kinds (each an ISubmissionKind): aggregate, tracker, orgunit."""
