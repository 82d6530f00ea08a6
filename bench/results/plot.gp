set terminal pngcairo size 1560,900 font 'sans,10'
set output 'bench/results/plot.png'
set multiplot layout 2,3
set key below
set grid
set xlabel 'consumer streams (a viewer of audio + video = 2)'
set ylabel 'forwarded packets/s'
set y2label 'loss %'
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set format y '%.0s%c'
set title 'fanout: forwarded packets/s and loss'
plot 'bench/results/plot-fanout-w1.dat' u 1:2 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'forwarded pkt/s, 1 worker', 'bench/results/plot-fanout-w1.dat' u 1:4 axes x1y2 w lp lw 1 dt 2 pt 9 lc rgb '#1f77b4' t 'loss %, 1 worker (right)', 'bench/results/plot-fanout-w2.dat' u 1:2 w lp lw 2 pt 7 lc rgb '#d62728' t 'forwarded pkt/s, 2 workers', 'bench/results/plot-fanout-w2.dat' u 1:4 axes x1y2 w lp lw 1 dt 2 pt 9 lc rgb '#d62728' t 'loss %, 2 workers (right)'
set title 'meeting: forwarded packets/s and loss'
plot 'bench/results/plot-meeting-w1.dat' u 1:2 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'forwarded pkt/s, 1 worker', 'bench/results/plot-meeting-w1.dat' u 1:4 axes x1y2 w lp lw 1 dt 2 pt 9 lc rgb '#1f77b4' t 'loss %, 1 worker (right)', 'bench/results/plot-meeting-w2.dat' u 1:2 w lp lw 2 pt 7 lc rgb '#d62728' t 'forwarded pkt/s, 2 workers', 'bench/results/plot-meeting-w2.dat' u 1:4 axes x1y2 w lp lw 1 dt 2 pt 9 lc rgb '#d62728' t 'loss %, 2 workers (right)'
set title 'audio: forwarded packets/s and loss'
plot 'bench/results/plot-audio-w1.dat' u 1:2 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'forwarded pkt/s, 1 worker', 'bench/results/plot-audio-w1.dat' u 1:4 axes x1y2 w lp lw 1 dt 2 pt 9 lc rgb '#1f77b4' t 'loss %, 1 worker (right)', 'bench/results/plot-audio-w2.dat' u 1:2 w lp lw 2 pt 7 lc rgb '#d62728' t 'forwarded pkt/s, 2 workers', 'bench/results/plot-audio-w2.dat' u 1:4 axes x1y2 w lp lw 1 dt 2 pt 9 lc rgb '#d62728' t 'loss %, 2 workers (right)'
unset y2label
unset y2tics
set ytics mirror
set format y '%g'
set ylabel 'µs of CPU per forwarded packet'
set title 'fanout: CPU per forwarded packet'
plot 'bench/results/plot-fanout-w1.dat' u 1:3 w lp lw 2 pt 5 lc rgb '#1f77b4' t 'SFU, 1 worker', 'bench/results/plot-fanout-w1.dat' u 1:5 w lp lw 1 dt 3 pt 4 lc rgb '#1f77b4' t 'bare path (in the 1-worker run)', 'bench/results/plot-fanout-w2.dat' u 1:3 w lp lw 2 pt 5 lc rgb '#d62728' t 'SFU, 2 workers', 'bench/results/plot-fanout-w2.dat' u 1:5 w lp lw 1 dt 3 pt 4 lc rgb '#d62728' t 'bare path (in the 2-worker run)'
set title 'meeting: CPU per forwarded packet'
plot 'bench/results/plot-meeting-w1.dat' u 1:3 w lp lw 2 pt 5 lc rgb '#1f77b4' t 'SFU, 1 worker', 'bench/results/plot-meeting-w1.dat' u 1:5 w lp lw 1 dt 3 pt 4 lc rgb '#1f77b4' t 'bare path (in the 1-worker run)', 'bench/results/plot-meeting-w2.dat' u 1:3 w lp lw 2 pt 5 lc rgb '#d62728' t 'SFU, 2 workers', 'bench/results/plot-meeting-w2.dat' u 1:5 w lp lw 1 dt 3 pt 4 lc rgb '#d62728' t 'bare path (in the 2-worker run)'
set title 'audio: CPU per forwarded packet'
plot 'bench/results/plot-audio-w1.dat' u 1:3 w lp lw 2 pt 5 lc rgb '#1f77b4' t 'SFU, 1 worker', 'bench/results/plot-audio-w1.dat' u 1:5 w lp lw 1 dt 3 pt 4 lc rgb '#1f77b4' t 'bare path (in the 1-worker run)', 'bench/results/plot-audio-w2.dat' u 1:3 w lp lw 2 pt 5 lc rgb '#d62728' t 'SFU, 2 workers', 'bench/results/plot-audio-w2.dat' u 1:5 w lp lw 1 dt 3 pt 4 lc rgb '#d62728' t 'bare path (in the 2-worker run)'
unset multiplot
