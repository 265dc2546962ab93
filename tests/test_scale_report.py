"""The scale bench's report: which ratios compare runs that may have had different hosts."""

from bench import scale


def test_the_scale_report_names_ratios_over_runs_on_different_days():
    small = {"sasrec": {"finished": "2026-12-01 10:00"},
             "bpr": {"finished": "2026-12-04 09:00", "host_gflops": 150.0, "dataset": "ml-100k"}}
    large = {"sasrec": {"finished": "2026-12-04 11:00", "host_gflops": 300.0, "dataset": "ml-1m-sas"},
             "bpr": {"finished": "2026-12-04 12:00"}}  # fmt: skip
    (line, _) = scale.session_lines(small, large)
    assert "sasrec (2026-12-01 / 2026-12-04)" in line and "bpr (" not in line  # bpr's two sides share a day
    assert "bpr on ml-100k 150" in line and "sasrec on ml-1m-sas 300" in line  # each rate names its run
    assert scale.session_lines(small, {}) == []
    (line, _) = scale.session_lines({"fm": {}}, {"fm": {"finished": "2026-12-04 13:00"}})
    assert "fm (undated / 2026-12-04)" in line  # runs kept before they were dated
