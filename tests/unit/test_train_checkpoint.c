/* test_train_checkpoint.c — checkpoint round trip and refusal of damaged files; CRC-32. */
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
