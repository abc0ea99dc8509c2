/* test_weights.c — train/weights: safetensors save/load of a net's parameters with Keras names. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/init.h"
#include "nn/models.h"
#include "test.h"
#include "train/weights.h"
#include "util/safetensors.h"

static Net *small_net(const char *model, int width)
{
    char err[256];
    ModelConfig c = model_config_default(model);
    c.size = 32;
    c.classes = 5;
    c.width = width;
    c.alpha = 0.25;
    c.batch = 2;
    Net *net = model_build(&c, 1, err, sizeof err);
    if (!net)
        printf("    %s\n", err);
    return net;
}

TEST(train_weights_round_trip_and_refusals)
{
    char dir[] = "/tmp/initlab_w_XXXXXX", path[96], err[256] = "";
    REQUIRE(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    Net *a = small_net("mobilenet", 0), *b = small_net("mobilenet", 0);
    REQUIRE(a && b);
    init_net(a, INIT_HE_NORMAL, FAN_KERAS, 3);
    Param *mm = net_find_param(a, "conv_pw_3_bn/moving_mean");
    REQUIRE(mm);
    for (size_t i = 0; i < mm->size; i++)
        mm->data[i] = (float)i * 0.5f; /* statistics travel too */
    const char *meta[] = {"model", "mobilenet", "layout", "ignored", NULL};
    CHECK_INT(weights_save_safetensors(a, path, meta, err, sizeof err), 0);

    /* The file holds every parameter under its Keras name, in the Keras layout. */
    SafeTensors *st = st_read(path, err, sizeof err);
    REQUIRE(st);
    CHECK_INT(st_count(st), net_n_params(a));
    CHECK_STR(st_metadata(st, "layout"), "keras");
    CHECK_STR(st_metadata(st, "model"), "mobilenet");
    const StTensor *k = st_find(st, "conv_dw_2/depthwise_kernel");
    REQUIRE(k);
    CHECK(k->ndim == 4 && k->shape[0] == 3 && k->shape[1] == 3 && k->shape[2] == 16 &&
          k->shape[3] == 1);
    CHECK_STR(st_at(st, 0)->name, "conv1/kernel");
    st_free(st);

    CHECK_INT(weights_load_safetensors(b, path, err, sizeof err), 0);
    for (int i = 0; i < net_n_params(a); i++) {
        const Param *p = net_param_const(a, i), *q = net_param_const(b, i);
        CHECK_STR(q->name, p->name);
        if (memcmp(p->data, q->data, p->size * sizeof(float)) != 0)
            test_fail(__FILE__, __LINE__, "%s differs after loading", p->name);
    }

    /* Another architecture is refused with the tensor named, the net left untouched. */
    Net *c = small_net("resnet18", 8);
    REQUIRE(c);
    init_net(c, INIT_HE_NORMAL, FAN_KERAS, 4);
    float before = net_param(c, 0)->data[0];
    CHECK_INT(weights_load_safetensors(c, path, err, sizeof err), -1);
    CHECK(strstr(err, "missing") != NULL || strstr(err, "shape") != NULL);
    CHECK(net_param(c, 0)->data[0] == before);

    /* A wider variant of the same model: same names, other shapes. */
    Net *d = small_net("plain", 8), *e = small_net("plain", 16);
    REQUIRE(d && e);
    snprintf(path, sizeof path, "%s/p.safetensors", dir);
    CHECK_INT(weights_save_safetensors(d, path, NULL, err, sizeof err), 0);
    CHECK_INT(weights_load_safetensors(e, path, err, sizeof err), -1);
    CHECK(strstr(err, "conv_1/kernel") != NULL && strstr(err, "shape") != NULL);

    net_free(a);
    net_free(b);
    net_free(c);
    net_free(d);
    net_free(e);
    unlink(path);
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    unlink(path);
    rmdir(dir);
}
