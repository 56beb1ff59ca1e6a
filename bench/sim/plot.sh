#!/bin/sh
# Runs picker-sim and plots each backend's share over time (BENCHMARKS.md,
# "Balancing on what only picker sees"): the slow backend under the four
# strategies, and a cold joining backend with and without slow start.
#
#   bench/sim/plot.sh [BUILD_DIR] [OUT_DIR]     (defaults: build, bench/sim)
#
# Needs Debian's gnuplot (gnuplot-nox); it is installed here when missing,
# as root, with apt-get. Writes OUT_DIR/sim.csv, OUT_DIR/sim.txt (the
# table) and OUT_DIR/sim.png.
set -eu
build=${1:-build}
out=${2:-bench/sim}
if ! command -v gnuplot >/dev/null 2>&1; then
  apt-get install -y --no-install-recommends gnuplot-nox
fi
"$build/picker-sim" --spawn-server "$build/picker-server" --series "$out/sim.csv" | tee "$out/sim.txt"

# One series per scenario: time, then each backend's share.
series() { grep "^$1," "$out/sim.csv" | cut -d, -f2-; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for s in round_robin least_request peak_ewma weighted_round_robin \
         round_robin+join round_robin+join+slow_start least_request+join \
         least_request+join+slow_start peak_ewma+join weighted_round_robin+join; do
  series "$s" > "$dir/$s.dat"
done
gnuplot <<GNUPLOT
set terminal pngcairo size 1200,500 font ",10" noenhanced
set output "$out/sim.png"
set datafile separator ","
set multiplot layout 1,2
set xlabel "seconds"
set ylabel "share of requests"
set yrange [0:0.6]
set key top left
set title "Backend 0 becomes 5x slower at 4 s (fair share 0.25)"
plot "$dir/round_robin.dat" using 1:2 with lines lw 2 title "round_robin", \
     "$dir/least_request.dat" using 1:2 with lines lw 2 title "least_request", \
     "$dir/peak_ewma.dat" using 1:2 with lines lw 2 title "peak_ewma", \
     "$dir/weighted_round_robin.dat" using 1:2 with lines lw 2 title "weighted_round_robin"
set title "Cold backend 3 joins at 2 s (fair share 0.25)"
plot "$dir/round_robin+join.dat" using 1:5 with lines lw 2 title "round_robin", \
     "$dir/round_robin+join+slow_start.dat" using 1:5 with lines lw 2 title "round_robin + slow start", \
     "$dir/least_request+join.dat" using 1:5 with lines lw 2 title "least_request", \
     "$dir/least_request+join+slow_start.dat" using 1:5 with lines lw 2 title "least_request + slow start", \
     "$dir/peak_ewma+join.dat" using 1:5 with lines lw 2 title "peak_ewma"
unset multiplot
GNUPLOT
echo "wrote $out/sim.png"
