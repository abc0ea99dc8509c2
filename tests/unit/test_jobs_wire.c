/* test_jobs_wire.c — the worker protocol's JSON forms carry every bit of a double (and the
 * non-finite ones) both ways, name what is wrong in a malformed record, and digest a
 * dataset's files. */
#include "test.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/wire.h"
#include "util/jsonout.h"

/* Sends v through its text form, as the wire does. */
static json_t *through_text(json_t *v)
{
    char *text = json_text(v, JSON_COMPACT);
    json_decref(v);
    json_t *back = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return back;
}

static bool same_double(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b));
}

TEST(wire_epoch_and_stat_round_trip_every_bit)
{
    StoreEpoch e = {.epoch = 7, .train_loss = 0.1 + 0.2, .train_acc = 1.0 / 3,
                    .val_loss = INFINITY, .val_acc = NAN, .lr = 0.019999999552965164,
                    .seconds = 5e-324, .images_per_sec = -INFINITY};
    json_t *v = through_text(wire_epoch(&e));
    REQUIRE(v);
    StoreEpoch back;
    char err[256];
    REQUIRE(wire_epoch_parse(v, &back, err, sizeof err) == 0);
    json_decref(v);
    CHECK_INT(back.epoch, 7);
    const double *x = &e.train_loss, *y = &back.train_loss;
    for (int i = 0; i < 7; i++)
        CHECK(same_double(x[i], y[i]));

    StoreLayerStat s;
    memset(&s, 0, sizeof s);
    s.mode = STORE_MODE_INFERENCE;
    s.quantity = STORE_QTY_GRADIENT;
    s.layer_index = 12;
    snprintf(s.layer_name, sizeof s.layer_name, "conv_dw_3");
    snprintf(s.layer_type, sizeof s.layer_type, "depthwise_conv2d");
    s.n = 1LL << 40;
    s.mean = -1.2345678901234567e-300;
    s.std = 3.0000000000000004;
    s.predicted_var = NAN;
    s.saturation = INFINITY;
    s.nonfinite = 3;
    s.dead_units = 2;
    s.flags = 5;
    s.hist_lo = -0.5;
    s.hist_hi = 0.75;
    s.mean_abs = 0.1;
    s.theory_var = 2.0 / 9;
    s.fan_sum = 576;
    s.init_iters = 4;
    s.units = 64;
    for (int i = 0; i < STORE_HIST_BINS; i++)
        s.hist[i] = (uint32_t)(i * 2654435761u);
    v = through_text(wire_stat(&s));
    StoreLayerStat t;
    REQUIRE(v && wire_stat_parse(v, &t, err, sizeof err) == 0);
    json_decref(v);
    CHECK(memcmp(s.hist, t.hist, sizeof s.hist) == 0);
    CHECK_STR(t.layer_name, "conv_dw_3");
    CHECK_INT(t.mode, STORE_MODE_INFERENCE);
    CHECK_INT(t.quantity, STORE_QTY_GRADIENT);
    CHECK_INT(t.n, 1LL << 40);
    CHECK(same_double(t.mean, s.mean) && same_double(t.std, s.std));
    CHECK(isnan(t.predicted_var) && isinf(t.saturation));
    CHECK_INT(t.flags, 5);
    /* Every member, the ones added later included: the row arrives whole. */
    CHECK(memcmp(&s, &t, sizeof s) == 0);
}

TEST(wire_step_round_trips_and_refuses_impossible_points)
{
    StoreStep p = {.global_step = 1LL << 33, .epoch = 3, .step = 5, .steps_per_epoch = 12,
                   .loss = 2.3025850929940455, .accuracy = NAN};
    json_t *v = through_text(wire_step(&p));
    StoreStep back;
    char err[256] = "";
    REQUIRE(v && wire_step_parse(v, &back, err, sizeof err) == 0);
    CHECK_INT(back.global_step, 1LL << 33);
    CHECK_INT(back.epoch, 3);
    CHECK_INT(back.step, 5);
    CHECK_INT(back.steps_per_epoch, 12);
    CHECK(same_double(back.loss, p.loss) && isnan(back.accuracy));
    json_object_set_new(v, "step", json_integer(13)); /* past the epoch's last step */
    CHECK(wire_step_parse(v, &back, err, sizeof err) < 0);
    CHECK(strstr(err, "steps_per_epoch") != NULL);
    json_object_del(v, "loss");
    CHECK(wire_step_parse(v, &back, err, sizeof err) < 0);
    CHECK(strstr(err, "step.loss: required") != NULL);
    json_decref(v);
}

TEST(wire_refuses_malformed_records_naming_the_member)
{
    char err[256] = "";
    StoreEpoch e;
    json_t *v = json_pack("{s:i, s:s}", "epoch", 1, "train_loss", "lots");
    CHECK(wire_epoch_parse(v, &e, err, sizeof err) < 0);
    CHECK(strstr(err, "train_loss") != NULL);
    json_decref(v);
    StoreLayerStat s;
    memset(&s, 0, sizeof s);
    v = wire_stat(&s);
    json_array_remove(json_object_get(v, "hist"), 0);
    CHECK(wire_stat_parse(v, &s, err, sizeof err) < 0);
    CHECK(strstr(err, "hist") != NULL);
    json_object_set_new(v, "hist", json_array());
    json_object_set_new(v, "mode", json_string("sideways"));
    CHECK(wire_stat_parse(v, &s, err, sizeof err) < 0);
    json_decref(v);
    double d;
    json_t *weird = json_string("Infinity");
    CHECK(wire_number_get(weird, &d) < 0);
    json_decref(weird);
}

TEST(wire_files_digest_depends_on_names_sizes_and_order)
{
    char a[17], b[17], c[17], d[17];
    uint64_t h;
    wire_files_digest_begin(&h);
    wire_files_digest_add(&h, "x/1.jpg", 10);
    wire_files_digest_add(&h, "x/2.jpg", 20);
    wire_files_digest_end(h, a);
    wire_files_digest_begin(&h);
    wire_files_digest_add(&h, "x/2.jpg", 20);
    wire_files_digest_add(&h, "x/1.jpg", 10);
    wire_files_digest_end(h, b);
    wire_files_digest_begin(&h);
    wire_files_digest_add(&h, "x/1.jpg", 10);
    wire_files_digest_add(&h, "x/2.jpg", 21);
    wire_files_digest_end(h, c);
    wire_files_digest_begin(&h);
    wire_files_digest_add(&h, "x/1.jpg1", 0);
    wire_files_digest_add(&h, "x/2.jpg", 20);
    wire_files_digest_end(h, d);
    CHECK_INT((int)strlen(a), 16);
    CHECK(strcmp(a, b) != 0 && strcmp(a, c) != 0 && strcmp(a, d) != 0);
}
