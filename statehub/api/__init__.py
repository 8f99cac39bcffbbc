"""HTTP controllers, one module per resource. Handlers parse, call a library function, answer."""
