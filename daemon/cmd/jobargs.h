/* jobargs.h — job options on the command line: `--batch-size 32 --flip --milestones 30,60`.
 *
 * Every key of a job configuration (train/config.h) is also a flag: dashes become
 * underscores, and the value is read as JSON-like text — true/false, an integer, a
 * number, a comma-separated list of numbers, or else a string. A flag with no value
 * (followed by another flag or the end) is true; --no-KEY is false. The resulting JSON
 * object goes through config_from_json, so the command line and the HTTP API accept and
 * refuse exactly the same configurations. */
#ifndef INITLAB_CMD_JOBARGS_H
#define INITLAB_CMD_JOBARGS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* A flag of the command itself (not a job option). */
typedef struct {
    const char *name;   /* without dashes: "data" */
    bool takes_value;
    const char **value; /* receives the value (or "1" for a switch); may be NULL */
} CmdFlag;

/* Parses argv[1..argc) into the command's own flags and the job options in obj (borrowed).
 * Returns 0, 1 when --help was given, or -1 with a message in err for a malformed
 * command line (a positional argument, a missing value). */
int jobargs_parse(int argc, char **argv, const CmdFlag *own, int n_own, json_t *obj,
                  char *err, size_t errlen);

/* Prints the job options (the configuration keys and their defaults in quick preset) as
 * help text. */
void jobargs_print_options(FILE *out);

#endif
