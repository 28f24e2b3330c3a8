#!/usr/bin/env python3
"""Turns bench/grid/run.py's JSON lines (stdin) into the Markdown tables of BENCHMARKS.md:
one row per backend, picture size and grid, with the tile grid's bytes as a fraction of
the full-size grid's measured on the same camhub in the same run: per second (what the
phone receives) and per frame (mean JPEG; the same comparison if both grids ran at the
same fps). "CPU per tile frame" is camhub's CPU above its no-viewer baseline divided by
the frames the grid received."""
import json
import sys


def main():
    rows = [json.loads(line) for line in sys.stdin if line.strip()]
    grids = [r for r in rows if r["phase"] not in ("stop", "no viewer")]
    idle = {(r["label"], r["size"]): r for r in rows if r["phase"] == "no viewer"}
    stops = [r for r in rows if r["phase"] == "stop"]

    print("| backend | cameras | grid | round | Mbit/s | bytes/s vs full size | bytes/frame vs full size "
          "| frames/s (tile fps min / median) "
          "| picture | mean JPEG KiB | camhub CPU % | rnd-* threads % | CPU per tile frame ms "
          "| replayers CPU % | loadgen CPU % | RSS MiB |")
    print("|---|---|---|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|")
    for key in dict.fromkeys((r["label"], r["size"]) for r in rows if "size" in r):
        label, size = key
        if key in idle:
            i = idle[key]
            print(f"| {label} | {i['cameras']} × {size} | no viewer | – | 0 | – | – | – | – | – "
                  f"| {i['camhub_cpu_pct']} | {i['rnd_threads_cpu_pct']} | – "
                  f"| {i['replayers_cpu_pct']} | {i['loadgen_cpu_pct']} | {i['rss_mib']} |")
        mine = [r for r in grids if (r["label"], r["size"]) == key]
        for r in mine:
            full = [f for f in mine if f["phase"] == "full size" and f["round"] == r["round"]]
            ratio = per_frame_ratio = "1"
            if r["phase"] != "full size" and full and r["bytes_per_s"]:
                ratio = f"1/{full[0]['bytes_per_s'] / r['bytes_per_s']:.1f}"
                per_frame_ratio = f"1/{full[0]['jpeg_bytes_mean'] / r['jpeg_bytes_mean']:.1f}"
            pics = ", ".join(f"{k}" for k in r["picture_sizes"])
            base = idle.get(key, {}).get("camhub_cpu_pct", 0.0)
            per_frame = (r["camhub_cpu_pct"] - base) * 10 / r["frames_per_s"] if r["frames_per_s"] else 0
            print(f"| {label} | {r['cameras']} × {size} | {r['phase']} | {r['round']} "
                  f"| {r['mbit_per_s']:.1f} | {ratio} | {per_frame_ratio} "
                  f"| {r['frames_per_s']:.1f} ({r['tile_fps_min']:.2f} / {r['tile_fps_median']:.2f}) "
                  f"| {pics} | {r['jpeg_bytes_mean'] / 1024:.1f} | {r['camhub_cpu_pct']} "
                  f"| {r['rnd_threads_cpu_pct']} | {per_frame:.2f} | {r['replayers_cpu_pct']} "
                  f"| {r['loadgen_cpu_pct']} | {r['rss_mib']} |")
    print()
    print("Per-phase details (threads' CPU %, what /api/streams said was being made, kinds of "
          "record received):\n")
    for r in grids:
        print(f"- {r['label']} {r['size']} {r['phase']} round {r['round']}: threads "
              f"{r['threads_cpu_pct']}; renditions {r['renditions'] or '{}'}; kinds {r['kinds']}; "
              f"feeds {r['feeds']}; source fps median {r['source_fps_median']}")
    for s in stops:
        print(f"- {s['label']} {s.get('size', '')}: SIGTERM→exit {s['sigterm_to_exit_ms']} ms, "
              f"processes left behind: {len(s['leftover_children'])}")


if __name__ == "__main__":
    main()
