/* cmd.h — initlab's subcommands: each registers itself, main dispatches by name.
 *
 * A command lives in its own file under daemon/cmd/ and registers with COMMAND():
 *
 *     static int cmd_scan(int argc, char **argv) { ... return 0; }
 *     COMMAND(scan, "scan", cmd_scan, 30, "scan DIR [--json]",
 *             "list classes, split counts and skipped files")
 *
 * argv[0] is the command name; the function returns the process exit status
 * (0 success, 1 runtime failure, 2 usage error) and must answer --help / -h with its
 * usage on stdout and status 0. Commands may call exit() only through returning. */
#ifndef INITLAB_CMD_H
#define INITLAB_CMD_H

typedef int (*CmdFn)(int argc, char **argv);

typedef struct {
    const char *name;
    CmdFn fn;
    int order;          /* position in `initlab --help` */
    const char *usage;  /* "scan DIR [--json]" */
    const char *summary;
} Command;

/* Registers a command; called by COMMAND's constructor. Can't fail (aborts past 64). */
void cmd_register(const Command *cmd);
/* The registered command named name, or NULL. */
const Command *cmd_find(const char *name);
/* Number of registered commands and the i-th in `order`. */
int cmd_count(void);
const Command *cmd_at(int i);

/* Sets what the shared libraries read when they load, before they do: unless the user
 * set them, OPENBLAS_CORETYPE to the best core the CPU supports and GOMP_SPINCOUNT to a
 * brief spin (see startup.c), re-executing the program once with them set. In the
 * re-executed process it verifies sgemm against a naive reference under the chosen core
 * and falls back to the shipped core (re-executing again, with a warning) when they
 * disagree. The re-executed process keeps the name the first one had (`initlab`, not
 * the `exe` of /proc/self/exe), in /proc/PID/comm and for each of its threads. Call first
 * thing in main. Returns normally only in the process that will do the work. */
void startup_runtime(int argc, char **argv);
/* Tells start-up how many compute threads the command will run at once. When that is more
 * than the cores and the wait policy is initlab's own, switches OpenMP to sleep at once
 * (OMP_WAIT_POLICY=passive) by re-executing the program; call it after parsing options
 * and before opening files or starting threads. Returns normally in the process that
 * will do the work. */
void startup_wait_policy(int threads);
/* How the running core was chosen: "cpuid", "environment", "fallback" or "default". */
const char *startup_blas_source(void);

#define COMMAND(id, name_, fn_, order_, usage_, summary_)                      \
    __attribute__((constructor)) static void cmd_reg_##id(void)               \
    {                                                                         \
        static const Command c = {name_, fn_, order_, usage_, summary_};     \
        cmd_register(&c);                                                     \
    }

#endif
