#!/usr/bin/env python3
"""report.py RESULTS_TXT RESULTS_MD: turns the raw lines bench/run.sh wrote
("TARGET KEY VALUE...", one line per round for the measured figures) into the
table of medians with their spread, the ratios and the targets, printed on
stdout and written as Markdown to RESULTS_MD.
report.py --self-test: checks the median and spread helpers, the loading of
failed rounds and the targets."""

import sys

TARGETS = [("direct", "direct"), ("nginx", "nginx"), ("haproxy", "HAProxy"), ("cutover", "cutover"),
           ("cutover-log", "cutover, access log on")]
# key, label, unit, format, higher is better
METRICS = [
    ("get_rps", "small GET, 50 conns", "req/s", "{:.0f}", True),
    ("get_p50_ms", "small GET p50", "ms", "{:.3f}", False),
    ("get_p99_ms", "small GET p99", "ms", "{:.3f}", False),
    ("cpu_us_per_req", "small GET proxy CPU per request", "µs", "{:.2f}", False),
    ("dl_mibs", "64 MiB download", "MiB/s", "{:.0f}", True),
    ("post_rps", "1 MiB POST", "req/s", "{:.0f}", True),
    ("rss_kib_per_conn", "RSS per idle keep-alive conn", "KiB", "{:.1f}", False),
]


def median(xs):
    """The median of a non-empty list (the mean of the middle two when even)."""
    v = sorted(xs)
    n = len(v)
    if n == 0:
        raise ValueError("median of nothing")
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def spread(xs):
    """(min, max) of a non-empty list: with 5 rounds an IQR would rest on
    two or three points, the range says plainly how far the rounds strayed."""
    if not xs:
        raise ValueError("spread of nothing")
    return min(xs), max(xs)


def load(path):
    """meta {key: text}, values {(who, key): [float per round] or "failed: why"},
    notes {who: [text]}; a failure in any round marks the figure failed only
    when no round produced a number."""
    meta, values, notes, failures = {}, {}, {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) < 3:
                continue
            who, key, val = parts
            if who == "meta":
                meta[key] = val
            elif key == "note":
                notes.setdefault(who, []).append(val)
            else:
                try:
                    num = float(val)
                except ValueError:
                    failures.setdefault((who, key), []).append(val)   # "failed: why"
                else:
                    values.setdefault((who, key), []).append(num)
    for k, why in failures.items():
        if k in values:
            notes.setdefault(k[0], []).append("%s: %d round(s) %s" % (k[1], len(why), why[0]))
        else:
            values[k] = why[0]
    return meta, values, notes


def med(values, who, key):
    v = values.get((who, key))
    return median(v) if isinstance(v, list) and v else None


def cell(values, notes, who, key, fmt):
    v = values.get((who, key))
    if v is None:
        failed = any(n.startswith("failed") for n in notes.get(who, []))
        return "failed" if failed else "-"
    if isinstance(v, str):
        return "failed"
    text = fmt.format(median(v))
    if len(v) > 1:
        lo, hi = spread(v)
        text += " (%s..%s)" % (fmt.format(lo), fmt.format(hi))
    return text


def ratio(values, a, b, key):
    x, y = med(values, a, key), med(values, b, key)
    if x is not None and y is not None and y > 0:
        return x / y
    return None


def fmt_ratio(r):
    return "-" if r is None else "{:.2f}x".format(r)


def check_rows(checks):
    """A value of None gives "n/a"; a string (why it failed) is the result."""
    return [(name, want, "-", "n/a") if v is None else
            (name, want, "-", v) if isinstance(v, str) else
            (name, want, fmt.format(v), "PASS" if ok(v) else "MISS")
            for name, want, v, ok, fmt in checks]


def targets_issue3(values):
    """Issue 3's targets: (name, wanted, cutover's value, PASS/MISS/n/a)."""
    return check_rows([
        ("small-GET req/s vs HAProxy", ">= 0.80x",
         ratio(values, "cutover", "haproxy", "get_rps"), lambda r: r >= 0.8, "{:.2f}x"),
        ("small-GET p99 vs HAProxy", "<= 1.50x",
         ratio(values, "cutover", "haproxy", "get_p99_ms"), lambda r: r <= 1.5, "{:.2f}x"),
        ("64 MiB download vs direct", ">= 0.80x",
         ratio(values, "cutover", "direct", "dl_mibs"), lambda r: r >= 0.8, "{:.2f}x"),
        ("RSS per idle keep-alive conn", "<= 16 KiB",
         med(values, "cutover", "rss_kib_per_conn"), lambda v: v <= 16.0, "{:.1f} KiB"),
    ])


def targets_issue16(values):
    """Issue 16's targets, on the medians of the interleaved rounds."""
    log_on = ratio(values, "cutover-log", "cutover", "get_rps")
    if isinstance(values.get(("cutover-log", "get_rps")), str):
        log_on = "failed"       # no round with a full access log: no figure
    return check_rows([
        ("small GET proxy CPU per request vs HAProxy", "<= 0.90x",
         ratio(values, "cutover", "haproxy", "cpu_us_per_req"), lambda r: r <= 0.9, "{:.2f}x"),
        ("small GET req/s vs HAProxy", ">= 1.00x",
         ratio(values, "cutover", "haproxy", "get_rps"), lambda r: r >= 1.0, "{:.2f}x"),
        ("small GET p99 vs HAProxy", "<= 1.00x",
         ratio(values, "cutover", "haproxy", "get_p99_ms"), lambda r: r <= 1.0, "{:.2f}x"),
        ("64 MiB download vs direct", ">= 0.90x",
         ratio(values, "cutover", "direct", "dl_mibs"), lambda r: r >= 0.9, "{:.2f}x"),
        ("1 MiB POST req/s vs HAProxy", ">= 1.00x",
         ratio(values, "cutover", "haproxy", "post_rps"), lambda r: r >= 1.0, "{:.2f}x"),
        ("small GET req/s, access log on vs off", ">= 0.90x",
         log_on, lambda r: r >= 0.9, "{:.2f}x"),
    ])


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def self_test():
    assert median([3.0]) == 3.0
    assert median([5.0, 1.0, 3.0]) == 3.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert spread([2.0, 9.0, 4.0]) == (2.0, 9.0)
    for f in (median, spread):
        try:
            f([])
        except ValueError:
            pass
        else:
            raise AssertionError("%s([]) did not fail" % f.__name__)
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        raw = os.path.join(d, "r.txt")
        with open(raw, "w", encoding="utf-8") as f:
            f.write("haproxy get_rps 100\nhaproxy get_rps 120\nhaproxy get_rps 90\n"
                    "cutover get_rps 110\ncutover get_rps failed: wrk: no result\ncutover get_rps 130\n"
                    "haproxy post_rps failed: wrk: no result\n")
        _, values, notes = load(raw)
    assert values[("haproxy", "get_rps")] == [100.0, 120.0, 90.0]
    assert values[("cutover", "get_rps")] == [110.0, 130.0]
    assert values[("haproxy", "post_rps")].startswith("failed")
    assert any("1 round(s)" in n for n in notes["cutover"])
    assert abs(ratio(values, "cutover", "haproxy", "get_rps") - 1.2) < 1e-9
    assert cell(values, notes, "haproxy", "get_rps", "{:.0f}") == "100 (90..120)"
    assert dict((r[0], r[3]) for r in targets_issue16(values))["small GET req/s vs HAProxy"] == "PASS"
    log_line = "small GET req/s, access log on vs off"
    assert dict((r[0], r[3]) for r in targets_issue16(values))[log_line] == "n/a"
    for raw_log, want in (("cutover-log get_rps 100\ncutover-log get_rps 120\n", ("0.92x", "PASS")),
                          ("cutover-log get_rps 90\ncutover-log get_rps 80\n", ("0.71x", "MISS")),
                          ("cutover-log get_rps failed: the access log grew by 0 lines for 9 requests\n",
                           ("-", "failed"))):
        with tempfile.TemporaryDirectory() as d:
            raw = os.path.join(d, "r.txt")
            with open(raw, "w", encoding="utf-8") as f:
                f.write("cutover get_rps 110\ncutover get_rps 130\n" + raw_log)
            _, values, notes = load(raw)
        assert dict((r[0], r[2:]) for r in targets_issue16(values))[log_line] == want, want
    assert cell(values, notes, "cutover-log", "get_rps", "{:.0f}") == "failed"
    print("report.py self-test: ok")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if len(sys.argv) != 3:
        print("usage: report.py RESULTS_TXT RESULTS_MD | --self-test", file=sys.stderr)
        return 2
    meta, values, notes = load(sys.argv[1])
    header = (["metric"] + [label for _, label in TARGETS]
              + ["cutover/HAProxy", "cutover/direct", "log on/off"])
    rows = []
    for key, label, unit, fmt, _ in METRICS:
        rows.append(["%s (%s)" % (label, unit)]
                    + [cell(values, notes, who, key, fmt) for who, _ in TARGETS]
                    + [fmt_ratio(ratio(values, "cutover", "haproxy", key)),
                       fmt_ratio(ratio(values, "cutover", "direct", key)),
                       fmt_ratio(ratio(values, "cutover-log", "cutover", key))])
    main_table = table(header, rows)
    issue3_table = table(["target (issue 3)", "wanted", "cutover", "result"], targets_issue3(values))
    issue16_table = table(["target (issue 16, medians)", "wanted", "cutover", "result"],
                          targets_issue16(values))

    note_lines = []
    for who, label in TARGETS:
        for n in notes.get(who, []):
            note_lines.append("- %s: %s" % (label, n))
        for key, *_ in METRICS:
            v = values.get((who, key))
            if isinstance(v, str):
                note_lines.append("- %s %s: %s" % (label, key, v))

    legend = ("Each cell: the median over the rounds, (min..max) beside it; ratios are of the medians. "
              "CPU per request: the proxy's utime+stime (all its processes) over each small-GET "
              "run, divided by the requests wrk made. RSS per idle connection: measured once. "
              "\"cutover, access log on\": the same binary, a second instance writing the JSON "
              "access log to a file, small GET only; a round counts only when the log grew by a "
              "line per request; \"log on/off\" is its ratio to cutover.")
    print()
    if "busy" in meta:
        print("WARNING: %s" % meta["busy"])
    print(main_table)
    print()
    print(legend)
    print()
    print(issue16_table)
    print()
    print(issue3_table)
    if note_lines:
        print()
        print("\n".join(note_lines))

    md = ["# cutover bench results", "",
          "Written by `make bench` (bench/run.sh); one run of %s interleaved rounds, "
          "numbers from a single machine." % meta.get("rounds", "?"), "",
          "- date: %s" % meta.get("date", "?"),
          "- machine: %s CPUs (%s), %s, kernel %s" % (meta.get("nproc", "?"), meta.get("cpu", "?"),
                                                      meta.get("memory", "?"), meta.get("kernel", "?")),
          "- versions: %s" % meta.get("versions", "?"),
          "- cutover binary: `%s`" % meta.get("cutover_bin", "?"),
          "- method: %s" % meta.get("method", "?"),
          ] + (["- **warning**: %s" % meta["busy"]] if "busy" in meta else []) + [
          "", main_table, "", legend, "", issue16_table, "", issue3_table, ""]
    if note_lines:
        md += ["Notes:", ""] + note_lines + [""]
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
