"""Prompt versions: first/last seen and volume; pick two for a template diff side by side,
the metric differences with confidence intervals, and example traces of each."""

from __future__ import annotations

import difflib
import html

import polars as pl
import streamlit as st

from analytics.compare import COMPARABLE_METRICS
from app import data
from app.widgets import current, fmt_ms, require_traces, trace_url

key, view = current()
st.title("Prompt versions")

DIFF_STYLE = """
<style>
table.tw-diff {border-collapse: collapse; width: 100%; font-family: monospace; font-size: 0.8rem;}
table.tw-diff td {vertical-align: top; padding: 1px 6px; white-space: pre-wrap;
                  word-break: break-word; width: 50%;}
table.tw-diff td.n {width: 2.5em; color: #888; text-align: right; user-select: none;}
table.tw-diff th {text-align: left; padding: 4px 6px; border-bottom: 1px solid #ddd;}
td.del {background: #fde2e1;} td.add {background: #dcfce7;} td.chg-a {background: #fef3c7;}
td.chg-b {background: #fef3c7;} td.empty {background: #f5f5f5;}
</style>
"""


def diff_rows(a: list[str], b: list[str]) -> tuple[list[tuple[str, str, str, str, str]], int]:
    """Side-by-side rows (left no, left text, right no, right text, kind) and the number of
    changed lines; kind is equal, replace, delete or insert (difflib opcodes)."""
    rows: list[tuple[str, str, str, str, str]] = []
    changed = 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            rows += [(str(i1 + k + 1), a[i1 + k], str(j1 + k + 1), b[j1 + k], tag)
                     for k in range(i2 - i1)]
            continue
        changed += max(i2 - i1, j2 - j1)
        for k in range(max(i2 - i1, j2 - j1)):
            left = (str(i1 + k + 1), a[i1 + k]) if i1 + k < i2 else ("", "")
            right = (str(j1 + k + 1), b[j1 + k]) if j1 + k < j2 else ("", "")
            rows.append((*left, *right, tag))
    return rows, changed


def diff_html(rows: list[tuple[str, str, str, str, str]], label_a: str, label_b: str) -> str:
    classes = {"equal": ("", ""), "replace": ("chg-a", "chg-b"), "delete": ("del", "empty"),
               "insert": ("empty", "add")}
    body = []
    for left_no, left, right_no, right, tag in rows:
        cls_a, cls_b = classes[tag]
        if tag == "replace":
            cls_a = cls_a if left_no else "empty"
            cls_b = cls_b if right_no else "empty"
        body.append(f"<tr><td class='n'>{left_no}</td><td class='{cls_a}'>{html.escape(left)}</td>"
                    f"<td class='n'>{right_no}</td><td class='{cls_b}'>{html.escape(right)}</td></tr>")
    return (DIFF_STYLE + "<table class='tw-diff'><tr><th></th><th>"
            + html.escape(label_a) + "</th><th></th><th>" + html.escape(label_b)
            + "</th></tr>" + "".join(body) + "</table>")


versions = data.prompt_versions(key, view)
if require_traces(key, data.kpis(key, view)["num_requests"][0] == 0):
    if versions.is_empty():
        st.info("No trace in this view carries a prompt version (`llm.prompt_template.version`"
                " on the LLM span). Widen the filters, or pick a service that sets one.",
                icon=":material/info:")
    else:
        st.dataframe(versions.with_columns(pl.col("services").list.join(", ")),
                     hide_index=True, width="stretch",
                     column_config={"num_traces": "traces", "first_seen": "first seen (UTC)",
                                    "last_seen": "last seen (UTC)"})
        names = versions["prompt_version"].to_list()
        if len(names) < 2:
            st.info("Only one prompt version in this view: nothing to compare yet.")
        else:
            # ?a=v3&b=v4 (e.g. from a Slack alert on a new prompt version) preselects the pair.
            wanted_a, wanted_b = st.query_params.get("a"), st.query_params.get("b")
            index_b = names.index(wanted_b) if wanted_b in names else len(names) - 1
            index_a = names.index(wanted_a) if wanted_a in names else max(index_b - 1, 0)
            if index_a == index_b:
                index_a = (index_b - 1) % len(names)
            left, right = st.columns(2)
            version_a = left.selectbox("Baseline (A)", names, index=index_a, key="pv_a")
            version_b = right.selectbox("Candidate (B)", names, index=index_b, key="pv_b")
            if version_a == version_b:
                st.info("Pick two different versions.")
            else:
                st.subheader(f"Template: {version_a} → {version_b}")
                template_a = data.prompt_template(key, version_a)
                template_b = data.prompt_template(key, version_b)
                if template_a is None or template_b is None:
                    missing = version_a if template_a is None else version_b
                    st.info(f"No template stored for {missing} (the spans carry no "
                            "`llm.prompt_template.template`).")
                else:
                    rows, num_changed = diff_rows(template_a.splitlines(),
                                                  template_b.splitlines())
                    st.caption(f"{num_changed} changed line(s)" if num_changed
                               else "The templates are identical.")
                    st.html(diff_html(rows, version_a, version_b))

                st.subheader("Metrics: B − A")
                slice_a = data.with_filter(view, "prompt_version", version_a)
                slice_b = data.with_filter(view, "prompt_version", version_b)
                comparison = data.compare_views(key, slice_a, slice_b, COMPARABLE_METRICS)
                st.dataframe(
                    comparison.select("metric", "value_a", "value_b", "difference", "ci_low",
                                      "ci_high", "p_value", "significant", "status", "num_a",
                                      "num_b", "test"),
                    hide_index=True, width="stretch",
                    column_config={"value_a": f"A ({version_a})", "value_b": f"B ({version_b})",
                                   "ci_low": "95% CI low", "ci_high": "95% CI high"},
                )
                st.caption("Rates in [0, 1], latency in ms, cost in USD per request; "
                           "see analytics.compare for the tests.")

                st.subheader("Example traces")
                cols = st.columns(2)
                for column, version, slice_ in ((cols[0], version_a, slice_a),
                                                (cols[1], version_b, slice_b)):
                    examples = data.list_traces(key, slice_, limit=5)
                    column.markdown(f"**{version}**")
                    for row in examples.iter_rows(named=True):
                        column.markdown(
                            f"- [{row['trace_id'][:12]}…]({trace_url(row['trace_id'])}) "
                            f"{row['start_time']:%m-%d %H:%M} · {row['status_code'] or '—'} · "
                            f"{fmt_ms(row['duration_ms'])}")
