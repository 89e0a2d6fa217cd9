"""Reports: terminal table data, JSON, self-contained HTML."""

from evofusion.viz.report import report_data, write_html_report

__all__ = ["report_data", "write_html_report"]
