"""Renderers of comparison results (Markdown now; HTML with plots arrives with the reports issue)."""
