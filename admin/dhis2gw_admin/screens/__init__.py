"""KivyMD screens: widgets only; each binds to its view model."""
