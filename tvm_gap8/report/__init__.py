"""What a compile produced, for people and tools: report.json's contents and the table
(``contents``), why a layer stays float (``floatlayers``), the per-layer plot (``plot``)."""

from .contents import check_lines, format_table

__all__ = ["check_lines", "format_table"]
