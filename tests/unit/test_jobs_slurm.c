/* test_jobs_slurm.c — the sbatch command line and batch script the Slurm executor builds
 * for a job: every configured option reaches sbatch, the job's priority becomes --nice,
 * USR1 is asked for before the time limit, and the script runs one quoted worker. */
#include "test.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/slurm.h"

static bool has(char **argv, const char *opt)
{
    for (int i = 0; argv[i]; i++)
        if (strcmp(argv[i], opt) == 0)
            return true;
    return false;
}

static bool has_prefix(char **argv, const char *prefix)
{
    for (int i = 0; argv[i]; i++)
        if (strncmp(argv[i], prefix, strlen(prefix)) == 0)
            return true;
    return false;
}

TEST(slurm_batch_passes_every_option)
{
    SlurmConfig cfg = {.server_url = "https://head:8470", .token_file = "/srv/it's/token",
                       .worker_bin = "/opt/initlab/bin/initlab", .data_root = "/srv/data",
                       .cache_dir = "/tmp/c", .ca_file = "/etc/ca.pem", .log_dir = "/var/log/s",
                       .partition = "batch", .account = "lab", .time_limit = "24:00:00",
                       .mem = "16G", .gres = "gpu:1",
                       .extra_options = "--exclusive  --constraint=avx512",
                       .cpus_per_task = 4, .signal_seconds = 120, .poll_seconds = 5};
    char **argv = NULL, *script = NULL;
    REQUIRE(slurm_batch(&cfg, 42, 3, &argv, &script) == 0);
    CHECK_STR(argv[0], "sbatch");
    CHECK(has(argv, "--parsable"));
    CHECK(has(argv, "--job-name=initlab-42"));
    CHECK(has(argv, "--output=/var/log/s/initlab-42-%j.out"));
    CHECK(has(argv, "--cpus-per-task=4"));
    CHECK(has(argv, "--nice=9997"));
    CHECK(has(argv, "--no-requeue"));
    CHECK(has(argv, "--signal=B:USR1@120"));
    CHECK(has(argv, "--partition=batch"));
    CHECK(has(argv, "--account=lab"));
    CHECK(has(argv, "--time=24:00:00"));
    CHECK(has(argv, "--mem=16G"));
    CHECK(has(argv, "--gres=gpu:1"));
    CHECK(has(argv, "--exclusive"));
    CHECK(has(argv, "--constraint=avx512"));
    CHECK(!has(argv, ""));
    CHECK(strncmp(script, "#!/bin/sh\n", 10) == 0);
    CHECK(strstr(script, "exec ") != NULL);
    CHECK(strstr(script, " worker --server") != NULL);
    CHECK(strstr(script, "exec '/opt/initlab/bin/initlab' worker --server "
                         "'https://head:8470'") != NULL);
    CHECK(strstr(script, " --once --job '42'") != NULL);
    CHECK(strstr(script, " --data-root '/srv/data'") != NULL);
    CHECK(strstr(script, " --cache-dir '/tmp/c'") != NULL);
    CHECK(strstr(script, " --ca-file '/etc/ca.pem'") != NULL);
    /* The quote in the token's path cannot end the shell word. */
    CHECK(strstr(script, " --token-file '/srv/it'\\''s/token'") != NULL);
    slurm_argv_free(argv);
    free(script);
}

TEST(slurm_batch_defaults_and_priority_bounds)
{
    SlurmConfig cfg = {.server_url = "http://h:1", .token_file = "/t", .worker_bin = "initlab",
                       .log_dir = "/l", .poll_seconds = 5};
    char **argv = NULL, *script = NULL;
    REQUIRE(slurm_batch(&cfg, 7, 99999, &argv, &script) == 0);
    CHECK(has(argv, "--cpus-per-task=1"));
    CHECK(has(argv, "--nice=0"));
    CHECK(!has_prefix(argv, "--signal"));
    CHECK(!has_prefix(argv, "--partition"));
    CHECK(!has_prefix(argv, "--account"));
    CHECK(!has_prefix(argv, "--time"));
    CHECK(!has_prefix(argv, "--mem"));
    CHECK(!has_prefix(argv, "--gres"));
    CHECK(strstr(script, "--data-root") == NULL);
    CHECK(strstr(script, "--ca-file") == NULL);
    slurm_argv_free(argv);
    free(script);
    REQUIRE(slurm_batch(&cfg, 7, -99999, &argv, &script) == 0);
    CHECK(has(argv, "--nice=20000"));
    slurm_argv_free(argv);
    free(script);
}
