#!/usr/bin/env python3
"""report.py RESULTS_TXT RESULTS_MD: turns the raw lines bench/run.sh wrote
("TARGET KEY VALUE...") into the table with ratios and targets, printed on
stdout and written as Markdown to RESULTS_MD."""

import sys

TARGETS = [("direct", "direct"), ("nginx", "nginx"), ("haproxy", "HAProxy"), ("cutover", "cutover")]
# key, label, unit, format, higher is better
METRICS = [
    ("get_rps", "small GET, 50 conns", "req/s", "{:.0f}", True),
    ("get_p50_ms", "small GET p50", "ms", "{:.3f}", False),
    ("get_p99_ms", "small GET p99", "ms", "{:.3f}", False),
    ("dl_mibs", "64 MiB download", "MiB/s", "{:.0f}", True),
    ("post_rps", "1 MiB POST", "req/s", "{:.0f}", True),
    ("rss_kib_per_conn", "RSS per idle keep-alive conn", "KiB", "{:.1f}", False),
]


def load(path):
    meta, values, notes = {}, {}, {}
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
                    values[(who, key)] = float(val)
                except ValueError:
                    values[(who, key)] = val       # "failed: why"
    return meta, values, notes


def cell(values, notes, who, key, fmt):
    v = values.get((who, key))
    if v is None:
        failed = any(n.startswith("failed") for n in notes.get(who, []))
        return "failed" if failed else "-"
    if isinstance(v, str):
        return "failed"
    return fmt.format(v)


def ratio(values, a, b, key):
    x, y = values.get((a, key)), values.get((b, key))
    if isinstance(x, float) and isinstance(y, float) and y > 0:
        return x / y
    return None


def fmt_ratio(r):
    return "-" if r is None else "{:.2f}x".format(r)


def targets(values):
    """The issue's targets: (name, wanted, cutover's value, PASS/MISS/n/a)."""
    rss = values.get(("cutover", "rss_kib_per_conn"))
    checks = [
        ("small-GET req/s vs HAProxy", ">= 0.80x",
         ratio(values, "cutover", "haproxy", "get_rps"), lambda r: r >= 0.8, "{:.2f}x"),
        ("small-GET p99 vs HAProxy", "<= 1.50x",
         ratio(values, "cutover", "haproxy", "get_p99_ms"), lambda r: r <= 1.5, "{:.2f}x"),
        ("64 MiB download vs direct", ">= 0.80x",
         ratio(values, "cutover", "direct", "dl_mibs"), lambda r: r >= 0.8, "{:.2f}x"),
        ("RSS per idle keep-alive conn", "<= 16 KiB",
         rss if isinstance(rss, float) else None, lambda v: v <= 16.0, "{:.1f} KiB"),
    ]
    return [(name, want, "-", "n/a") if v is None else
            (name, want, fmt.format(v), "PASS" if ok(v) else "MISS")
            for name, want, v, ok, fmt in checks]


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def main():
    meta, values, notes = load(sys.argv[1])
    header = ["metric"] + [label for _, label in TARGETS] + ["cutover/HAProxy", "cutover/direct"]
    rows = []
    for key, label, unit, fmt, _ in METRICS:
        rows.append(["%s (%s)" % (label, unit)]
                    + [cell(values, notes, who, key, fmt) for who, _ in TARGETS]
                    + [fmt_ratio(ratio(values, "cutover", "haproxy", key)),
                       fmt_ratio(ratio(values, "cutover", "direct", key))])
    main_table = table(header, rows)
    target_table = table(["target (issue 3)", "wanted", "cutover", "result"], targets(values))

    note_lines = []
    for who, label in TARGETS:
        for n in notes.get(who, []):
            note_lines.append("- %s: %s" % (label, n))
        for key, *_ in METRICS:
            v = values.get((who, key))
            if isinstance(v, str):
                note_lines.append("- %s %s: %s" % (label, key, v))

    print()
    if "busy" in meta:
        print("WARNING: %s" % meta["busy"])
    print(main_table)
    print()
    print(target_table)
    if note_lines:
        print()
        print("\n".join(note_lines))

    md = ["# cutover bench results", "",
          "Written by `make bench` (bench/run.sh); one run, numbers from a single machine.", "",
          "- date: %s" % meta.get("date", "?"),
          "- machine: %s CPUs (%s), %s, kernel %s" % (meta.get("nproc", "?"), meta.get("cpu", "?"),
                                                      meta.get("memory", "?"), meta.get("kernel", "?")),
          "- versions: %s" % meta.get("versions", "?"),
          "- cutover binary: `%s`" % meta.get("cutover_bin", "?"),
          "- method: %s" % meta.get("method", "?"),
          ] + (["- **warning**: %s" % meta["busy"]] if "busy" in meta else []) + [
          "", main_table, "", target_table, ""]
    if note_lines:
        md += ["Notes:", ""] + note_lines + [""]
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
