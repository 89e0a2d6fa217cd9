"""Export: genome JSON + safetensors bundles."""

from evofusion.export.bundle import export_student, load_student

__all__ = ["export_student", "load_student"]
