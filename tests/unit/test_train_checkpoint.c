/* test_train_checkpoint.c — checkpoint round trip and refusal of damaged files; CRC-32;
 * whose a checkpoint is: identity, configuration and data hashes, judging, setting aside. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/init.h"
#include "nn/net.h"
#include "test.h"
#include "train/checkpoint.h"
#include "util/crc32.h"

TEST(crc32_known_values)
{
    CHECK_INT(crc32_update(0, "123456789", 9), 0xCBF43926u);
    CHECK_INT(crc32_update(0, "", 0), 0);
    /* Split updates equal one pass (the slicing path and the byte path agree). */
    const char *text = "The quick brown fox jumps over the lazy dog";
    uint32_t whole = crc32_update(0, text, strlen(text));
    CHECK_INT(whole, 0x414FA339u);
    CHECK_INT(crc32_update(crc32_update(0, text, 13), text + 13, strlen(text) - 13), whole);
}

static Net *small_net(int filters)
{
    Net *net = net_create("small", 4, 8, 8, 3);
    int x = net_conv2d(net, 0, "conv", filters, 3, 3, 1, PAD_SAME, true);
    x = net_batchnorm(net, x, "conv_bn", 0.99f, 1e-3f);
    x = net_activation(net, x, "relu", ACT_RELU);
    x = net_gap(net, x, "gap", false);
    net_dense(net, x, "dense", 5, true);
    if (net_finalize(net, 1) < 0) {
        net_free(net);
        return NULL;
    }
    return net;
}

static char *temp_path(const char *name)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/initlab-ckpt-XXXXXX");
    if (!mkdtemp(dir))
        return NULL;
    char *p = malloc(128);
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

static bool nets_equal(Net *a, Net *b)
{
    for (int i = 0; i < net_n_params(a); i++) {
        Param *p = net_param(a, i), *q = net_param(b, i);
        if (memcmp(p->data, q->data, p->size * sizeof(float)) != 0)
            return false;
        if (p->trainable && memcmp(p->velocity, q->velocity, p->size * sizeof(float)) != 0)
            return false;
    }
    return true;
}

TEST(checkpoint_round_trip_restores_everything)
{
    Net *a = small_net(6), *b = small_net(6);
    REQUIRE(a && b);
    init_net(a, INIT_HE_UNIFORM, FAN_KERAS, 1);
    init_net(b, INIT_GLOROT_UNIFORM, FAN_KERAS, 2);
    for (int i = 0; i < net_n_params(a); i++) { /* velocities and moving stats non-trivial */
        Param *p = net_param(a, i);
        for (size_t k = 0; k < p->size; k++) {
            if (p->trainable)
                p->velocity[k] = 0.001f * (float)(k + i);
            if (!p->trainable)
                p->data[k] = 0.5f + 0.01f * (float)k;
        }
    }
    char *path = temp_path("latest.ckpt");
    REQUIRE(path);
    CheckpointState s = {.epoch = 7, .step = 3, .global_step = 1234, .loss_sum = 12.5,
                         .correct = 99, .seen = 128, .best_val_acc = 0.875, .best_epoch = 5,
                         .model = "small", .classes = 5};
    char err[256];
    CHECK_INT(checkpoint_save(path, a, &s, NULL, err, sizeof err), 0);
    CheckpointState r;
    CHECK_INT(checkpoint_load(path, b, &r, err, sizeof err), 0);
    CHECK(nets_equal(a, b));
    CHECK_INT(r.epoch, 7);
    CHECK_INT(r.step, 3);
    CHECK_INT(r.global_step, 1234);
    CHECK_NEAR(r.loss_sum, 12.5, 0);
    CHECK_INT(r.correct, 99);
    CHECK_INT(r.seen, 128);
    CHECK_NEAR(r.best_val_acc, 0.875, 0);
    CHECK_INT(r.best_epoch, 5);
    CHECK_STR(r.model, "small");
    unlink(path);
    free(path);
    net_free(a);
    net_free(b);
}

static void flip_byte(const char *path, long offset)
{
    FILE *f = fopen(path, "r+b");
    if (!f)
        return;
    fseek(f, offset, offset < 0 ? SEEK_END : SEEK_SET);
    int c = fgetc(f);
    fseek(f, -1, SEEK_CUR);
    fputc(c ^ 0x40, f);
    fclose(f);
}

TEST(checkpoint_refuses_damaged_files_and_keeps_the_net)
{
    Net *a = small_net(6), *b = small_net(6), *other = small_net(7);
    REQUIRE(a && b && other);
    init_net(a, INIT_HE_UNIFORM, FAN_KERAS, 1);
    init_net(b, INIT_HE_UNIFORM, FAN_KERAS, 9);
    char *path = temp_path("c.ckpt");
    REQUIRE(path);
    CheckpointState s = {.model = "small", .classes = 5};
    char err[256];
    REQUIRE(checkpoint_save(path, a, &s, NULL, err, sizeof err) == 0);

    CheckpointState r;
    CHECK_INT(checkpoint_load(path, other, &r, err, sizeof err), -1); /* another model */
    CHECK(strstr(err, "another model") != NULL);

    float before = net_param(b, 0)->data[0];
    flip_byte(path, -5); /* a weight byte: only the CRC can tell */
    CHECK_INT(checkpoint_load(path, b, &r, err, sizeof err), -1);
    CHECK(strstr(err, "CRC mismatch") != NULL);
    CHECK(net_param(b, 0)->data[0] == before);

    REQUIRE(checkpoint_save(path, a, &s, NULL, err, sizeof err) == 0);
    flip_byte(path, 0);
    CHECK_INT(checkpoint_load(path, b, &r, err, sizeof err), -1);
    CHECK(strstr(err, "bad magic") != NULL);

    REQUIRE(checkpoint_save(path, a, &s, NULL, err, sizeof err) == 0);
    REQUIRE(truncate(path, 100) == 0);
    CHECK_INT(checkpoint_load(path, b, &r, err, sizeof err), -1);
    CHECK(strstr(err, "truncated") != NULL);

    unlink(path);
    CHECK_INT(checkpoint_load(path, b, &r, err, sizeof err), -1);
    CHECK(strstr(err, "No such file") != NULL);
    free(path);
    net_free(a);
    net_free(b);
    net_free(other);
}

/* ---- Identity ----------------------------------------------------------------------- */

static CheckpointIdentity identity(const char *uid, const char *config_hash,
                                   const char *data_hash)
{
    CheckpointIdentity id = {.job_id = 12, .attempt = 3};
    snprintf(id.job_uid, sizeof id.job_uid, "%s", uid);
    snprintf(id.attempt_uid, sizeof id.attempt_uid, "%s", "0123456789abcdef0123456789abcdef");
    snprintf(id.config_hash, sizeof id.config_hash, "%s", config_hash);
    snprintf(id.data_hash, sizeof id.data_hash, "%s", data_hash);
    return id;
}

#define UID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define UID_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* Rewrites the format version in path's header (the CRC does not cover the header). */
static void set_version(const char *path, unsigned char version)
{
    FILE *f = fopen(path, "r+b");
    if (!f)
        return;
    fseek(f, 8, SEEK_SET);
    unsigned char v[4] = {version, 0, 0, 0};
    fwrite(v, 1, 4, f);
    fclose(f);
}

TEST(checkpoint_identity_round_trip_and_inspect)
{
    Net *a = small_net(6), *b = small_net(6);
    REQUIRE(a && b);
    init_net(a, INIT_HE_UNIFORM, FAN_KERAS, 1);
    char *path = temp_path("latest.ckpt");
    REQUIRE(path);
    CheckpointState s = {.epoch = 4, .step = 2, .best_epoch = 3, .best_val_acc = 0.75,
                         .model = "small", .classes = 5, .config_json = "{\"seed\":1}",
                         .identity = identity(UID_A, "00000000000000c1", "00000000000000d1")};
    char err[256];
    uint32_t crc = 0;
    REQUIRE(checkpoint_save(path, a, &s, &crc, err, sizeof err) == 0);
    CHECK(crc != 0);

    CheckpointInfo info;
    REQUIRE(checkpoint_inspect(path, &info, err, sizeof err) == 0);
    CHECK_INT(info.version, CHECKPOINT_VERSION);
    CHECK(info.has_identity);
    CHECK_STR(info.identity.job_uid, UID_A);
    CHECK_INT(info.identity.job_id, 12);
    CHECK_INT(info.identity.attempt, 3);
    CHECK_STR(info.identity.attempt_uid, "0123456789abcdef0123456789abcdef");
    CHECK_STR(info.identity.config_hash, "00000000000000c1");
    CHECK_STR(info.identity.data_hash, "00000000000000d1");
    CHECK_INT(info.epoch, 4);
    CHECK_INT(info.step, 2);
    CHECK_INT(info.best_epoch, 3);
    CHECK_STR(info.model, "small");
    CHECK_INT(info.crc, crc);
    CHECK_STR(info.config_json, "{\"seed\":1}");
    checkpoint_info_deinit(&info);

    CheckpointState r;
    REQUIRE(checkpoint_load(path, b, &r, err, sizeof err) == 0);
    CHECK_STR(r.identity.job_uid, UID_A);
    CHECK_STR(r.identity.data_hash, "00000000000000d1");

    /* Damaged, missing, from a newer initlab: told apart. */
    flip_byte(path, -5);
    CHECK_INT(checkpoint_inspect(path, &info, err, sizeof err), -2);
    CHECK(strstr(err, "CRC mismatch") != NULL);
    checkpoint_info_deinit(&info);
    REQUIRE(checkpoint_save(path, a, &s, NULL, err, sizeof err) == 0);
    set_version(path, CHECKPOINT_VERSION + 1);
    CHECK_INT(checkpoint_inspect(path, &info, err, sizeof err), -2);
    CHECK(strstr(err, "format version 3") != NULL);
    checkpoint_info_deinit(&info);
    unlink(path);
    errno = 0;
    CHECK_INT(checkpoint_inspect(path, &info, err, sizeof err), -1);
    CHECK_INT(errno, ENOENT);
    checkpoint_info_deinit(&info);
    free(path);
    net_free(a);
    net_free(b);
}

TEST(checkpoint_judge_refuses_other_jobs_configurations_and_data)
{
    CheckpointInfo found = {.has_identity = true,
                            .identity = identity(UID_A, "00000000000000c1", "00000000000000d1")};
    CheckpointIdentity want = identity(UID_A, "00000000000000c1", "00000000000000d1");
    char why[1024] = "";
    CHECK_INT(checkpoint_judge("x.ckpt", &found, &want, false, why, sizeof why),
              CHECKPOINT_OWN);

    CheckpointIdentity other = identity(UID_B, "00000000000000c1", "00000000000000d1");
    other.job_id = 7;
    CHECK_INT(checkpoint_judge("x.ckpt", &found, &other, true, why, sizeof why),
              CHECKPOINT_FOREIGN);
    CHECK(strstr(why, UID_A) && strstr(why, UID_B) && strstr(why, "job 7"));

    want = identity(UID_A, "00000000000000c2", "00000000000000d1");
    CHECK_INT(checkpoint_judge("x.ckpt", &found, &want, false, why, sizeof why),
              CHECKPOINT_MISMATCH);
    CHECK(strstr(why, "another configuration") && strstr(why, "00000000000000c1") &&
          strstr(why, "00000000000000c2"));

    want = identity(UID_A, "00000000000000c1", "00000000000000d2");
    CHECK_INT(checkpoint_judge("x.ckpt", &found, &want, false, why, sizeof why),
              CHECKPOINT_MISMATCH);
    CHECK(strstr(why, "other data") != NULL);
    want.data_hash[0] = '\0';   /* unknown: not compared */
    CHECK_INT(checkpoint_judge("x.ckpt", &found, &want, false, why, sizeof why),
              CHECKPOINT_OWN);
}

TEST(checkpoint_without_identity_is_adopted_only_by_an_older_job_with_its_configuration)
{
    Net *a = small_net(6);
    REQUIRE(a);
    char *path = temp_path("legacy.ckpt");
    REQUIRE(path);
    const char *config = "{\"lr\":0.01,\"seed\":1,\"threads\":4}";
    CheckpointState s = {.model = "small", .classes = 5, .config_json = config};
    char err[256];
    REQUIRE(checkpoint_save(path, a, &s, NULL, err, sizeof err) == 0);
    set_version(path, 1);  /* as initlab wrote checkpoints before identities */
    CheckpointInfo info;
    REQUIRE(checkpoint_inspect(path, &info, err, sizeof err) == 0);
    CHECK_INT(info.version, 1);
    CHECK(!info.has_identity);

    CheckpointIdentity want = identity(UID_A, "", "00000000000000d1");
    /* The job's stored configuration, with another thread count (it does not count). */
    REQUIRE(checkpoint_config_hash("{\"threads\":1,\"seed\":1,\"lr\":0.01}",
                                   want.config_hash) == 0);
    char why[1024];
    CHECK_INT(checkpoint_judge(path, &info, &want, true, why, sizeof why), CHECKPOINT_OWN);
    CHECK_INT(checkpoint_judge(path, &info, &want, false, why, sizeof why),
              CHECKPOINT_FOREIGN);
    CHECK(strstr(why, "has no identity") != NULL);
    REQUIRE(checkpoint_config_hash("{\"seed\":2,\"lr\":0.01}", want.config_hash) == 0);
    CHECK_INT(checkpoint_judge(path, &info, &want, true, why, sizeof why), CHECKPOINT_FOREIGN);
    CHECK(strstr(why, "another configuration") != NULL);
    checkpoint_info_deinit(&info);
    unlink(path);
    free(path);
    net_free(a);
}

TEST(checkpoint_config_hash_counts_what_shapes_the_weights)
{
    char h[CHECKPOINT_HASH_LEN + 1], g[CHECKPOINT_HASH_LEN + 1];
    REQUIRE(checkpoint_config_hash("{\"model\":\"plain\",\"lr\":0.01,\"seed\":1}", h) == 0);
    CHECK_INT((long long)strlen(h), CHECKPOINT_HASH_LEN);
    /* Key order, threads, priority, statistics and the preset's name do not count. */
    REQUIRE(checkpoint_config_hash("{\"seed\":1,\"threads\":8,\"priority\":3,\"stats_every\":5,"
                                   "\"probe_size\":64,\"preset\":\"paper\",\"lr\":0.01,"
                                   "\"model\":\"plain\"}", g) == 0);
    CHECK_STR(g, h);
    /* Everything else does, a key added later included. */
    const char *differ[] = {"{\"model\":\"plain\",\"lr\":0.02,\"seed\":1}",
                            "{\"model\":\"plain\",\"lr\":0.01,\"seed\":2}",
                            "{\"model\":\"mlp\",\"lr\":0.01,\"seed\":1}",
                            "{\"model\":\"plain\",\"lr\":0.01,\"seed\":1,\"label_smoothing\":0.1}"};
    for (size_t i = 0; i < sizeof differ / sizeof differ[0]; i++) {
        REQUIRE(checkpoint_config_hash(differ[i], g) == 0);
        CHECK(strcmp(g, h) != 0);
    }
    CHECK_INT(checkpoint_config_hash("[1, 2]", g), -1);
    CHECK_INT(checkpoint_config_hash("not json", g), -1);
}

TEST(checkpoint_data_hash_follows_files_labels_and_split)
{
    char *classes[] = {"clover", "dandelion"};
    char *paths[] = {"clover/a.jpg", "clover/b.jpg", "dandelion/c.jpg"};
    int labels[] = {0, 0, 1};
    int64_t sizes[] = {10, 20, 30}, mtimes[] = {1, 2, 3};
    uint8_t split[] = {DATA_SPLIT_TRAIN, DATA_SPLIT_VAL, DATA_SPLIT_TEST};
    DatasetIndex x = {.root = "/data", .n_classes = 2, .class_names = classes, .n_files = 3,
                      .paths = paths, .labels = labels, .sizes = sizes, .mtimes = mtimes,
                      .split = split};
    char h[CHECKPOINT_HASH_LEN + 1], g[CHECKPOINT_HASH_LEN + 1];
    checkpoint_data_hash(&x, h);
    CHECK_INT((long long)strlen(h), CHECKPOINT_HASH_LEN);
    /* A copy elsewhere, with other times and sizes: the same data. */
    x.root = "/elsewhere";
    sizes[0] = 11;
    mtimes[2] = 99;
    checkpoint_data_hash(&x, g);
    CHECK_STR(g, h);
    split[1] = DATA_SPLIT_TRAIN;
    checkpoint_data_hash(&x, g);
    CHECK(strcmp(g, h) != 0);
    split[1] = DATA_SPLIT_VAL;
    labels[1] = 1;
    checkpoint_data_hash(&x, g);
    CHECK(strcmp(g, h) != 0);
    labels[1] = 0;
    paths[2] = "dandelion/d.jpg";
    checkpoint_data_hash(&x, g);
    CHECK(strcmp(g, h) != 0);
    paths[2] = "dandelion/c.jpg";
    classes[1] = "dock";
    checkpoint_data_hash(&x, g);
    CHECK(strcmp(g, h) != 0);
    classes[1] = "dandelion";
    x.n_files = 2;
    checkpoint_data_hash(&x, g);
    CHECK(strcmp(g, h) != 0);
}

TEST(checkpoint_set_aside_keeps_the_file_and_says_why)
{
    Net *a = small_net(6);
    REQUIRE(a);
    char *path = temp_path("latest.ckpt");
    REQUIRE(path);
    CheckpointState s = {.model = "small", .classes = 5};
    char err[256], dest[4096], dest2[4096], quarantine[256];
    snprintf(quarantine, sizeof quarantine, "%.*s/quarantine",
             (int)(strrchr(path, '/') - path), path);
    REQUIRE(checkpoint_save(path, a, &s, NULL, err, sizeof err) == 0);
    REQUIRE(checkpoint_set_aside(path, quarantine, "job3-latest", "another job's", dest,
                                 sizeof dest, err, sizeof err) == 0);
    CHECK(access(path, F_OK) != 0);
    CHECK(strncmp(dest, quarantine, strlen(quarantine)) == 0);
    CHECK(strstr(dest, "/job3-latest.") != NULL);
    CheckpointInfo info;
    CHECK_INT(checkpoint_inspect(dest, &info, err, sizeof err), 0);
    checkpoint_info_deinit(&info);
    char note[4096];
    snprintf(note, sizeof note, "%.*s.txt", (int)(strlen(dest) - 5), dest);
    FILE *f = fopen(note, "r");
    REQUIRE(f);
    char line[256] = "";
    CHECK(fgets(line, sizeof line, f) != NULL);
    CHECK_STR(line, "another job's\n");
    fclose(f);
    /* A second one in the same second gets its own name. */
    REQUIRE(checkpoint_save(path, a, &s, NULL, err, sizeof err) == 0);
    REQUIRE(checkpoint_set_aside(path, quarantine, "job3-latest", "again", dest2,
                                 sizeof dest2, err, sizeof err) == 0);
    CHECK(strcmp(dest, dest2) != 0);
    CHECK(access(dest, F_OK) == 0 && access(dest2, F_OK) == 0);
    CHECK_INT(checkpoint_set_aside(path, quarantine, "job3-latest", "gone", NULL, 0, err,
                                   sizeof err), -1);
    CHECK(strstr(err, "No such file") != NULL);
    free(path);
    net_free(a);
}
