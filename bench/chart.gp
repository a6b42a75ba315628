# gnuplot script of bench/run.sh: throughput and p99 latency versus calls
# in flight, one line per contender ({"name":"John"} payload).
#   gnuplot -e "data='chart.tsv'; out='bench.png'" bench/chart.gp
# chart.tsv: a header row, then inflight followed by (calls/s, p99 µs)
# column pairs, one pair per contender.
set terminal pngcairo size 1200,520 font "sans,10"
set output out
set datafile separator "\t"
set datafile missing "NaN"
set key autotitle columnhead
set logscale x 2
set xtics (1, 16, 64, 256)
set xrange [0.8:320]
set grid
set key outside bottom center horizontal
ncol = int(system("head -1 '" . data . "' | awk -F'\t' '{print NF}'"))
n = (ncol - 1) / 2
set multiplot layout 1,2 title "cmicro vs Go Micro, gRPC C++, nginx and raw echo (loopback, server on 1 core)"
set title "throughput"
set xlabel "calls in flight"
set ylabel "calls/s"
set logscale y
plot for [i=1:n] data using 1:(column(2*i)) with linespoints lw 2 title columnhead(2*i)
set title "p99 latency"
set ylabel "p99 µs"
plot for [i=1:n] data using 1:(column(2*i+1)) with linespoints lw 2 title columnhead(2*i)
unset multiplot
