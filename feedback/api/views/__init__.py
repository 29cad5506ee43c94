"""API views by what they serve: parse input, call one service or selector, render. Rules live in
the services."""
