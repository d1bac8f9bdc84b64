/*
 * Several forked processes count words into one shared table and one atomic;
 * the parent prints the totals. Build the table before fork(), free it in
 * the parent after the children are gone.
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <swoop/swoop.h>

static const char *words[] = {"apple", "pear", "plum", "fig"};

static int print_row(swoop_table_t *t, const char *key, const void *row, void *arg)
{
    int64_t n;
    swoop_table_row_get_int(t, row, "count", &n);
    printf("%-6s %lld\n", key, (long long)n);
    return 0;
}

int main(void)
{
    swoop_table_t *t;
    swoop_atomic_t *total;
    swoop_table_column_def_t cols[] = {{"count", SWOOP_TABLE_INT, 0}};
    printf("a 1024-row table takes %zu bytes\n", swoop_table_memory_size(1024, 0.2, cols, 1));
    if (swoop_table_new(&t, 1024, 0.2) < 0 ||
        swoop_table_column(t, "count", SWOOP_TABLE_INT, 0) < 0 || swoop_table_create(t) < 0 ||
        swoop_atomic_new(&total, 0) < 0)
        return 1;
    for (int w = 0; w < 4; w++) {
        if (fork() == 0) {
            for (int i = 0; i < 10000; i++) {
                swoop_table_incr(t, words[(i + w) % 4], "count", 1, NULL);
                swoop_atomic_add(total, 1);
            }
            _exit(0);
        }
    }
    while (wait(NULL) > 0) {
    }
    swoop_table_foreach(t, print_row, NULL);
    printf("total  %lld (expected 40000)\n", (long long)swoop_atomic_get(total));
    swoop_atomic_free(total);
    swoop_table_free(t);
    return 0;
}
