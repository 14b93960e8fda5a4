"""The report stylesheet: scoped to `.prov` so it can sit inside a Jupyter notebook untouched."""

CSS = """
.prov { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: #1d2330; max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; }
.prov h1 { font-size: 26px; margin: 0 0 6px; }
.prov h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #dfe3ea; }
.prov h3 { font-size: 15px; margin: 18px 0 6px; }
.prov code, .prov pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 13px; }
.prov code { background: #f2f4f8; border-radius: 4px; padding: 1px 5px; overflow-wrap: anywhere; }
.prov pre { background: #f6f8fa; border: 1px solid #e3e7ee; border-radius: 6px; padding: 10px 12px;
  overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
.prov .pair { margin: 4px 0; } .prov .side { display: inline-block; width: 82px; color: #5b6577; }
.prov .muted { color: #5b6577; font-size: 13px; }
.prov .verdict { border-radius: 10px; padding: 16px 20px; margin: 18px 0; border-left: 8px solid; }
.prov .verdict .label { font-size: 30px; font-weight: 750; letter-spacing: .04em; display: inline-block;
  margin-right: 14px; }
.prov .verdict .relation { font-size: 17px; font-weight: 600; }
.prov .verdict .figures { margin: 6px 0; color: #3a4354; }
.prov .verdict .explanation { margin: 8px 0 0; font-size: 16px; }
.prov .verdict-identical, .prov .verdict-derived { background: #fdecec; border-color: #c62828; }
.prov .verdict-identical .label, .prov .verdict-derived .label { color: #a31515; }
.prov .verdict-independent { background: #e9f6ee; border-color: #2e7d32; }
.prov .verdict-independent .label { color: #1f6b26; }
.prov .verdict-inconclusive { background: #fff6e0; border-color: #e0a100; }
.prov .verdict-inconclusive .label { color: #8a6100; }
.prov .disagreements { background: #fffbe8; border: 1px solid #f0d27a; border-radius: 8px; padding: 6px 14px;
  margin-top: 12px; }
.prov .disagreements h3 { margin: 6px 0; }
.prov table { border-collapse: collapse; width: 100%; margin: 8px 0 14px; font-size: 14px; }
.prov th, .prov td { text-align: left; vertical-align: top; padding: 5px 9px; border-bottom: 1px solid #e6e9ef;
  overflow-wrap: break-word; }
.prov thead th { background: #f3f5f9; font-weight: 650; }
.prov #signals td:nth-child(4), .prov #evidence td:nth-child(4) { white-space: nowrap; }  /* "≤ 1e-300" whole */
.prov table.kv { width: auto; min-width: 50%; } .prov table.kv th { font-weight: 500; color: #4a5466; }
.prov details summary { cursor: pointer; color: #2a5db0; font-size: 13px; }
.prov details pre { max-height: 420px; overflow: auto; }
.prov figure.plot { margin: 14px 0; } .prov figure.plot svg { max-width: 100%; height: auto; }
.prov figcaption { color: #5b6577; font-size: 13px; }
.prov code.tok { margin: 0 3px 3px 0; display: inline-block; }
@media print { .prov details { display: block; } .prov { max-width: none; } }
"""
