# judge.awk — reads valgrind memcheck logs (DIR/vg.PID.log, from --log-file=DIR/vg.%p.log)
# and the wrapper's manifests (DIR/started: "PID<TAB>args", one line per agent the
# wrapper exec'd), and prints one line of counts, then one line per log with a problem:
#   counts JUDGED KILLED EXECD ERRORS DEF_BYTES IND_BYTES PROBLEMS
#   problem FILE WHY
# Called by scripts/valgrind.sh: awk -f judge.awk DIR/started DIR/vg.*.log
#
# A log is judged when memcheck finished it (it has the "ERROR SUMMARY" line): its
# errors, definitely and indirectly lost bytes count. A log without that line is one of:
#  - a child that the test forked and that then exec'd another program: memcheck does
#    not follow exec (--trace-children=no), so the log is the 6-line preamble only and
#    its "Parent PID" has a log in the same directory ("exec'd, not traced");
#  - a process killed with SIGKILL (crash torture, or a test's cleanup): memcheck got no
#    chance to finish the log ("killed, not judged"). Errors it reported before the kill
#    are still errors and still count.
# An agent in a manifest with no log at all was killed before valgrind opened one.
# Valgrind's own failures ("the 'impossible' happened") are always problems, and so
# is a process that died of a crash signal (SEGV, BUS, ILL, FPE, ABRT: memcheck
# still finishes its log, but the death itself is the finding); TERM and INT are
# how tests stop processes.

function dirof(f,   d) { d = f; sub(/\/[^\/]*$/, "", d); return d }

function flush() {
    if (file == "") return
    n++
    F[n] = file; DONE[n] = done; ERR[n] = errs; DEF[n] = def; IND[n] = ind; PP[n] = ppid
    BODY[n] = body; HEADS[n] = heads; BROKE[n] = broke; LREC[n] = lrec; SIG[n] = sig
    pid = file; sub(/^.*vg\./, "", pid); sub(/\.log$/, "", pid)
    HAVE[dirof(file) "/" pid] = 1
    file = ""
}

# The manifests: remember which agents were started, to count those without a log.
FILENAME ~ /\/started$/ {
    split($0, a, "\t")
    STARTED[dirof(FILENAME) "/" a[1]] = FILENAME
    next
}

FNR == 1 {
    flush()
    file = FILENAME; done = 0; errs = 0; def = 0; ind = 0; ppid = ""
    body = 0; heads = 0; broke = 0; lrec = 0; sig = 0; prev = ""
}
# The preamble is 6 lines (banner, copyright, version, Command, Parent PID, blank).
FNR > 6 { body++ }
/^==[0-9]+== Parent PID: / { ppid = $NF }
/^==[0-9]+== ERROR SUMMARY: / { done = 1; errs = $4 + 0 }
/^==[0-9]+==    definitely lost: / { v = $4; gsub(/,/, "", v); def = v + 0 }
/^==[0-9]+==    indirectly lost: / { v = $4; gsub(/,/, "", v); ind = v + 0 }
# Leak records count as errors in the ERROR SUMMARY (--errors-for-leak-kinds); they are
# reported as bytes instead, so they are taken out of the error count.
/ are (definitely|indirectly) lost in loss record / { lrec++ }
/^==[0-9]+== Process terminating with default action of signal [0-9]+/ {
    v = $0; sub(/^.*of signal /, "", v); sub(/[^0-9].*$/, "", v)
    if (v == 4 || v == 6 || v == 7 || v == 8 || v == 11) sig = v
}
/the 'impossible' happened|VALGRIND INTERNAL ERROR|[Vv]algrind: FATAL/ { broke = 1 }
# An error report: a heading at the first indentation followed by its stack.
/^==[0-9]+==    at 0x/ {
    if (prev ~ /^==[0-9]+== [^ ]/ && prev !~ / lost in loss record /) heads++
}
{ prev = $0 }

END {
    flush()
    judged = killed = execd = errors = dbytes = ibytes = problems = 0
    for (i = 1; i <= n; i++) {
        why = ""
        if (BROKE[i]) why = "valgrind itself failed"
        if (SIG[i]) why = why (why ? "; " : "") "died of signal " SIG[i]
        if (DONE[i]) {
            judged++
            e = ERR[i] - LREC[i]
            errors += e; dbytes += DEF[i]; ibytes += IND[i]
            if (e > 0) why = why (why ? "; " : "") e " error(s)"
            if (DEF[i] > 0) why = why (why ? "; " : "") DEF[i] " bytes definitely lost"
            if (IND[i] > 0) why = why (why ? "; " : "") IND[i] " bytes indirectly lost"
        } else if (BODY[i] == 0 && PP[i] != "" && ((dirof(F[i]) "/" PP[i]) in HAVE)) {
            execd++
        } else {
            killed++
            if (HEADS[i] > 0) {
                errors += HEADS[i]
                why = why (why ? "; " : "") HEADS[i] " error(s) before it was killed"
            }
        }
        if (why != "") { problems++; P[problems] = F[i] " " why }
    }
    for (k in STARTED) if (!(k in HAVE)) killed++
    printf "counts %d %d %d %d %d %d %d\n", judged, killed, execd, errors, dbytes, ibytes, problems
    for (i = 1; i <= problems; i++) print "problem " P[i]
}
