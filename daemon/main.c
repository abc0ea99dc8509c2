/* main.c — the initlab binary: chooses the BLAS core, then dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"

static void usage(FILE *out)
{
    fprintf(out,
            "initlab %s — weight-initialization experiments on convolutional networks\n\n"
            "usage: initlab COMMAND [OPTIONS]\n"
            "       initlab COMMAND --help     options of one command\n"
            "       initlab --version\n\n"
            "commands:\n",
            INITLAB_VERSION);
    for (int i = 0; i < cmd_count(); i++) {
        const Command *c = cmd_at(i);
        fprintf(out, "  %-15s %s\n", c->name, c->summary);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("initlab %s\n", INITLAB_VERSION);
        return 0;
    }
    const Command *cmd = cmd_find(argv[1]);
    if (!cmd) {
        fprintf(stderr, "initlab: unknown command '%s' (see 'initlab --help')\n", argv[1]);
        return 2;
    }
    startup_runtime(argc, argv);
    return cmd->fn(argc - 1, argv + 1);
}
