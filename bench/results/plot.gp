set terminal pngcairo size 1560,600 font 'sans,10'
set output 'bench/results/plot.png'
set multiplot layout 1,3
set key below
set grid
set xlabel 'consumer streams (a viewer of audio + video = 2)'
set ylabel 'packets/s'
set y2label 'loss %'
set ytics nomirror
set y2tics
set y2range [0:*]
set yrange [0:*]
set format y '%.0s%c'
set title 'fanout'
plot 'bench/results/plot-fanout.dat' u 1:2 w lp lw 2 pt 7 t 'forwarded pkt/s', '' u 1:3 w lp lw 2 pt 5 t 'pkt/s per core of SFU CPU', '' u 1:5 w lp lw 1 dt 2 pt 4 lc rgb 'gray40' t 'bare data path, pkt/s per core', '' u 1:4 axes x1y2 w lp lw 2 pt 9 lc rgb 'red' t 'loss % (right axis)'
set title 'meeting'
plot 'bench/results/plot-meeting.dat' u 1:2 w lp lw 2 pt 7 t 'forwarded pkt/s', '' u 1:3 w lp lw 2 pt 5 t 'pkt/s per core of SFU CPU', '' u 1:5 w lp lw 1 dt 2 pt 4 lc rgb 'gray40' t 'bare data path, pkt/s per core', '' u 1:4 axes x1y2 w lp lw 2 pt 9 lc rgb 'red' t 'loss % (right axis)'
set title 'audio'
plot 'bench/results/plot-audio.dat' u 1:2 w lp lw 2 pt 7 t 'forwarded pkt/s', '' u 1:3 w lp lw 2 pt 5 t 'pkt/s per core of SFU CPU', '' u 1:5 w lp lw 1 dt 2 pt 4 lc rgb 'gray40' t 'bare data path, pkt/s per core', '' u 1:4 axes x1y2 w lp lw 2 pt 9 lc rgb 'red' t 'loss % (right axis)'
unset multiplot
