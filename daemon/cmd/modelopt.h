/* modelopt.h — command-line options shared by the commands that build a model (summary, bench). */
#ifndef INITLAB_CMD_MODELOPT_H
#define INITLAB_CMD_MODELOPT_H

#include <stdbool.h>
#include <stddef.h>

#include "nn/models.h"

/* The help text of the model options, one option per line, for usage texts. */
extern const char modelopt_help[];

/* Finds "--model M" (or --model=M) in argv[1..], starts from model_config_default(M) and
 * applies every model option (--size, --classes, --head, --alpha, --depth-multiplier,
 * --dropout, --depth, --width, --activation, --batchnorm on|off, --channels). used (argc
 * entries, caller-owned) gets true at every argv index consumed, so the command can parse
 * the rest. Returns 0, or -1 with a message in err (no or unknown --model, missing or bad value). */
int modelopt_parse(int argc, char **argv, ModelConfig *cfg, bool *used, char *err, size_t errlen);

/* Matches argv[*i] against "--name" (value in the next argument, *i advanced) or
 * "--name=value". Returns 1 with *value set, 0 when argv[*i] is another option, -1 when
 * the value is missing (message in err). */
int cmdarg_value(int argc, char **argv, int *i, const char *name, const char **value, char *err,
                 size_t errlen);

/* Strict number parsing for option values: the whole text must be a number within
 * [lo, hi]. Return 0, or -1 with a message naming opt in err. */
int cmdarg_int(const char *opt, const char *text, long lo, long hi, long *out, char *err,
               size_t errlen);
int cmdarg_double(const char *opt, const char *text, double lo, double hi, double *out, char *err,
                  size_t errlen);

#endif
