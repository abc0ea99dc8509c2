/* registry.c — the table of subcommands that COMMAND() fills before main runs. */
#include "cmd/cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COMMANDS 64

static const Command *commands[MAX_COMMANDS];
static int n_commands;

void cmd_register(const Command *cmd)
{
    if (n_commands == MAX_COMMANDS) {
        fprintf(stderr, "initlab: more than %d commands\n", MAX_COMMANDS);
        abort();
    }
    /* Insertion sort by order keeps cmd_at() in help order. */
    int i = n_commands++;
    while (i > 0 && commands[i - 1]->order > cmd->order) {
        commands[i] = commands[i - 1];
        i--;
    }
    commands[i] = cmd;
}

const Command *cmd_find(const char *name)
{
    for (int i = 0; i < n_commands; i++)
        if (strcmp(commands[i]->name, name) == 0)
            return commands[i];
    return NULL;
}

int cmd_count(void)
{
    return n_commands;
}

const Command *cmd_at(int i)
{
    return i >= 0 && i < n_commands ? commands[i] : NULL;
}
