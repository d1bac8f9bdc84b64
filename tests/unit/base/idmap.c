/* The id map: against a model, with sequential, strided and random ids. */
#include "base/idmap.h"

#include <stdlib.h>

#include "test.h"

static void check_pattern(int64_t (*gen)(int i), int n)
{
    swoop_idmap_t m;
    swoop__idmap_init(&m);
    int64_t *keys = malloc(sizeof(*keys) * (size_t)n);
    char *live = calloc((size_t)n, 1);
    for (int i = 0; i < n; i++) {
        keys[i] = gen(i);
        swoop__idmap_put(&m, keys[i], &keys[i]);
        live[i] = 1;
    }
    ASSERT_UEQ(swoop__idmap_len(&m), (uint64_t)n);
    for (int i = 0; i < n; i++)
        ASSERT(swoop__idmap_get(&m, keys[i]) == &keys[i]);
    /* Delete every third, then check all, then delete the rest in reverse. */
    for (int i = 0; i < n; i += 3) {
        ASSERT(swoop__idmap_del(&m, keys[i]) == &keys[i]);
        live[i] = 0;
        ASSERT_NULL(swoop__idmap_del(&m, keys[i]));
    }
    for (int i = 0; i < n; i++)
        ASSERT(swoop__idmap_get(&m, keys[i]) == (live[i] ? &keys[i] : NULL));
    for (int i = n - 1; i >= 0; i--) {
        if (live[i])
            ASSERT(swoop__idmap_del(&m, keys[i]) == &keys[i]);
    }
    ASSERT_UEQ(swoop__idmap_len(&m), 0);
    ASSERT_NULL(swoop__idmap_get(&m, 1));
    ASSERT_NULL(swoop__idmap_get(&m, 0));
    ASSERT_NULL(swoop__idmap_get(&m, -3));
    swoop__idmap_free(&m);
    free(keys);
    free(live);
}

static int64_t sequential(int i)
{
    return i + 1;
}

static int64_t strided(int i)
{
    /* Ids a power of two apart: the case a plain identity hash piles up. */
    return (int64_t)i * 1024 + 7;
}

static int64_t scattered(int i)
{
    return (int64_t)(((uint64_t)i * 0x9E3779B97F4A7C15ull) >> 2) | 1;
}

TEST(idmap_patterns)
{
    check_pattern(sequential, 50000);
    check_pattern(strided, 50000);
    check_pattern(scattered, 50000);
}

TEST(idmap_random_against_model)
{
    enum { N = 20000 };
    static void *model[N + 1];
    swoop_idmap_t m;
    swoop__idmap_init(&m);
    srand(7);
    size_t live = 0;
    for (int op = 0; op < 200000; op++) {
        int64_t k = 1 + rand() % N;
        if (rand() % 2) {
            if (model[k] == NULL) {
                model[k] = &model[k];
                swoop__idmap_put(&m, k, model[k]);
                live++;
            }
        } else {
            ASSERT(swoop__idmap_del(&m, k) == model[k]);
            if (model[k])
                live--;
            model[k] = NULL;
        }
        ASSERT(swoop__idmap_get(&m, k) == model[k]);
    }
    ASSERT_UEQ(swoop__idmap_len(&m), live);
    for (int64_t k = 1; k <= N; k++)
        ASSERT(swoop__idmap_get(&m, k) == model[k]);
    swoop__idmap_free(&m);
}
