/* test_train_config.c — job configuration: presets, validation messages, JSON round trip. */
#include <string.h>

#include "test.h"
#include "train/config.h"
#include "train/trainer.h"

static int parse(const char *text, JobConfig *cfg, ConfigError *err)
{
    json_error_t jerr;
    json_t *obj = json_loads(text, 0, &jerr);
    if (!obj)
        return -2;
    int rc = config_from_json(obj, true, cfg, err);
    json_decref(obj);
    return rc;
}

TEST(config_paper_preset_follows_the_paper)
{
    JobConfig c;
    ConfigError e;
    REQUIRE(parse("{\"dataset\":\"weeds\",\"preset\":\"paper\",\"model\":\"mobilenet\"}", &c, &e) == 0);
    CHECK_INT(c.epochs, 100);
    CHECK_INT(c.batch_size, 128);
    CHECK_INT(c.image_size, 224);
    CHECK_STR(c.preprocess, "tf");
    CHECK_NEAR(c.lr, 0.01, 0);
    CHECK_NEAR(c.momentum, 0.9, 0);
    CHECK(c.nesterov);
    CHECK_STR(c.schedule, "step");
    CHECK_INT(c.n_milestones, 2);
    CHECK_INT(c.milestones[0], 30);
    CHECK_INT(c.milestones[1], 60);
    REQUIRE(parse("{\"dataset\":\"weeds\",\"preset\":\"paper\",\"model\":\"resnet50\"}", &c, &e) == 0);
    CHECK_INT(c.batch_size, 32);
    CHECK_STR(c.preprocess, "pixel_mean");
}

TEST(config_lr_schedules)
{
    JobConfig c;
    ConfigError e;
    REQUIRE(parse("{\"dataset\":\"d\",\"preset\":\"paper\"}", &c, &e) == 0);
    CHECK_NEAR(config_lr_at(&c, 0), 0.01, 1e-7);
    CHECK_NEAR(config_lr_at(&c, 29), 0.01, 1e-7);
    CHECK_NEAR(config_lr_at(&c, 30), 0.001, 1e-7);
    CHECK_NEAR(config_lr_at(&c, 60), 0.0001, 1e-7);
    REQUIRE(parse("{\"dataset\":\"d\",\"schedule\":\"cosine\",\"lr\":0.1,\"epochs\":4}", &c, &e) == 0);
    CHECK_NEAR(config_lr_at(&c, 0), 0.1, 1e-7);
    CHECK_NEAR(config_lr_at(&c, 2), 0.05, 1e-8);
    REQUIRE(parse("{\"dataset\":\"d\",\"schedule\":\"constant\",\"lr\":0.3}", &c, &e) == 0);
    CHECK_NEAR(config_lr_at(&c, 3), 0.3, 1e-7);
}

TEST(config_errors_name_the_field)
{
    static const struct { const char *json, *field, *says; } cases[] = {
        {"{\"dataset\":\"d\",\"epoch\":3}", "epoch", "unknown key"},
        {"{\"dataset\":\"d\",\"epochs\":-1}", "epochs", "between 1 and"},
        {"{\"dataset\":\"d\",\"epochs\":\"ten\"}", "epochs", "integer"},
        {"{\"dataset\":\"d\",\"lr\":0}", "lr", "between"},
        {"{\"dataset\":\"d\",\"model\":\"vgg\"}", "model", "unknown model"},
        {"{\"dataset\":\"d\",\"init\":\"kaiming\"}", "init", "expected one of"},
        {"{\"dataset\":\"d\",\"init_mode\":\"fan_sum\"}", "init_mode", "expected one of"},
        {"{\"dataset\":\"d\",\"init_gain\":0}", "init_gain", "between"},
        {"{\"dataset\":\"d\",\"bn_recalibrate\":-1}", "bn_recalibrate", "between"},
        {"{\"dataset\":\"d\",\"zero_gamma\":\"yes\"}", "zero_gamma", "true or false"},
        {"{\"dataset\":\"d\",\"nesterov\":1}", "nesterov", "true or false"},
        {"{\"dataset\":\"d\",\"milestones\":[5,3]}", "milestones", "increasing"},
        {"{\"dataset\":\"d\",\"class_weight\":[1,-2]}", "class_weight", ">= 0"},
        {"{\"dataset\":\"d\",\"image_size\":16}", "image_size", "at least 32"},
        {"{\"epochs\":3}", "dataset", "required"},
        {"{\"dataset\":\"d\",\"preset\":\"slow\"}", "preset", "unknown preset"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        JobConfig c;
        ConfigError e;
        CHECK_INT(parse(cases[i].json, &c, &e), -1);
        CHECK_STR(e.field, cases[i].field);
        if (!strstr(e.message, cases[i].says))
            test_fail(__FILE__, __LINE__, "%s: message \"%s\" lacks \"%s\"", cases[i].json,
                      e.message, cases[i].says);
    }
}

TEST(config_paper_protocol_can_be_cut_short)
{
    /* A few epochs of the paper's protocol: milestones past the end never trigger. */
    JobConfig c;
    ConfigError e;
    REQUIRE(parse("{\"dataset\":\"d\",\"preset\":\"paper\",\"epochs\":3}", &c, &e) == 0);
    CHECK_INT(c.n_milestones, 2);
    CHECK_NEAR(config_lr_at(&c, 2), 0.01, 1e-9);
}

TEST(config_round_trips_through_json)
{
    JobConfig a, b;
    ConfigError e;
    REQUIRE(parse("{\"dataset\":\"weeds\",\"model\":\"resnet18\",\"init\":\"he_normal\","
                  "\"seed\":123456789012,\"class_weight\":[1,2.5,3],\"milestones\":[2],"
                  "\"schedule\":\"step\",\"flip\":true,\"threads\":2}", &a, &e) == 0);
    json_t *j = config_to_json(&a);
    REQUIRE(j != NULL);
    CHECK(json_object_size(j) > 30);
    CHECK_INT(config_from_json(j, true, &b, &e), 0);
    json_decref(j);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    CHECK_INT(b.seed, 123456789012LL);
    CHECK_STR(b.class_weight, "list");
    CHECK_INT(b.n_class_weights, 3);
    CHECK_NEAR(b.class_weights[1], 2.5, 0);
}

TEST(config_width_reaches_the_resnets_and_defaults_to_keras)
{
    JobConfig c;
    ConfigError e;
    ModelConfig mc;
    char err[128];
    REQUIRE(parse("{\"dataset\":\"d\",\"model\":\"resnet50\"}", &c, &e) == 0);
    CHECK_INT(c.width, 64);
    REQUIRE(train_model_config(&c, 21, &mc, err, sizeof err) == 0);
    CHECK_INT(mc.width, 64);
    REQUIRE(parse("{\"dataset\":\"d\",\"model\":\"resnet18\",\"width\":16}", &c, &e) == 0);
    REQUIRE(train_model_config(&c, 21, &mc, err, sizeof err) == 0);
    CHECK_INT(mc.width, 16);
    CHECK_INT(mc.classes, 21);
    REQUIRE(parse("{\"dataset\":\"d\",\"model\":\"mobilenet\",\"alpha\":0.5,\"width\":16}", &c, &e) == 0);
    REQUIRE(train_model_config(&c, 21, &mc, err, sizeof err) == 0);
    CHECK_NEAR(mc.alpha, 0.5, 0);
}
