"""Side-by-side tables from the RESULT lines the benchmarks print (bench/run.sh feeds it a log).

    python3 bench/summarize.py LOG

Each benchmark prints one machine-readable line per measurement, e.g.
    RESULT framework=glimpse threads=2 step_ms=812.40 peak_rss_mib=1650.0 rss_growth_mib=900.0
This groups the decoder lines by thread count and the Inception lines by (batch, threads), and
prints each framework's time divided by glimpse's (> 1: slower than glimpse).
"""
import shlex
import sys


def parse(path):
    rows = []
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            if not line.startswith("RESULT "):
                continue
            fields = dict(item.split("=", 1) for item in shlex.split(line[len("RESULT "):]))
            rows.append(fields)
    return rows


def decoder_table(rows):
    rows = [r for r in rows if "step_ms" in r]
    if not rows:
        return
    print("\nDecoder training step (B=32, T=64, V=20000, 512 units), median ms/step;"
          " time / glimpse < 1 means faster than glimpse")
    print("%-8s %-10s %10s %10s %12s %12s %16s" % ("threads", "framework", "ms/step", "CPU ms",
                                                   "peak RSS MiB", "RSS growth", "time / glimpse"))
    for threads in sorted({r["threads"] for r in rows}, key=int, reverse=True):
        group = [r for r in rows if r["threads"] == threads]
        base = next((float(r["step_ms"]) for r in group if r["framework"] == "glimpse"), None)
        for r in group:
            ratio = "%.2fx" % (float(r["step_ms"]) / base) if base else "-"
            print("%-8s %-10s %10.1f %10.1f %12.0f %12.0f %16s" % (
                threads, r["framework"], float(r["step_ms"]), float(r.get("cpu_ms", "nan")),
                float(r["peak_rss_mib"]), float(r["rss_growth_mib"]), ratio))


def inception_table(rows):
    rows = [r for r in rows if "ms_per_image" in r]
    if not rows:
        return
    print("\nInception-ResNet-v2 forward at 299x299, ms per image;"
          " time / glimpse < 1 means faster than glimpse")
    print("%-6s %-8s %-12s %-16s %10s %12s %16s" % ("batch", "threads", "framework", "layout",
                                                    "ms/image", "CPU ms/image", "time / glimpse"))
    keys = sorted({(int(r["batch"]), int(r["threads"])) for r in rows})
    for batch, threads in keys:
        group = [r for r in rows if int(r["batch"]) == batch and int(r["threads"]) == threads]
        base = next((float(r["ms_per_image"]) for r in group if r["framework"] == "glimpse"), None)
        for r in group:
            ratio = "%.2fx" % (float(r["ms_per_image"]) / base) if base else "-"
            print("%-6d %-8d %-12s %-16s %10.1f %12.1f %16s" % (
                batch, threads, r["framework"], r["layout"], float(r["ms_per_image"]),
                float(r.get("cpu_ms_per_image", "nan")), ratio))


def caption_table(rows):
    rows = [r for r in rows if "encode_ms" in r]
    if not rows:
        return
    print("\nCaption latency, one image (glimpse)")
    print("%-6s %-8s %12s %12s %12s" % ("model", "threads", "encode ms", "decode ms", "total ms"))
    for r in rows:
        encode, decode = float(r["encode_ms"]), float(r["decode_ms"])
        print("%-6s %-8s %12.1f %12.1f %12.1f" % (r["model"], r["threads"], encode, decode,
                                                  encode + decode))


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    rows = parse(sys.argv[1])
    decoder_table(rows)
    inception_table(rows)
    caption_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
