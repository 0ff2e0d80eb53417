/* unit.h -- the common main of the Check unit tests.
 *
 *   int main(void) { return UNIT_RUN("core", test_a, test_b, ...); }
 *
 * runs the named tests as one suite (280 s timeout each: under meson's 300 s for the whole program, so a
 * hang is reported by Check with the test's name) and returns EXIT_SUCCESS or
 * EXIT_FAILURE; unit_run_suite(suite) does the same for a suite built by hand. Check's
 * own output (one line per failure, a summary) is kept. */
#ifndef SDLK_TESTS_UNIT_H
#define SDLK_TESTS_UNIT_H

#include <check.h>
#include <stddef.h>
#include <stdlib.h>

/* Run a suite (for tests that group their cases in several TCases). */
static inline int unit_run_suite(Suite *suite)
{
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

static inline int unit_run(const char *name, const TTest *const *tests, size_t count)
{
    Suite *suite = suite_create(name);
    TCase *tcase = tcase_create(name);
    tcase_set_timeout(tcase, 280);
    for (size_t i = 0; i < count; i++)
        tcase_add_test(tcase, tests[i]);
    suite_add_tcase(suite, tcase);
    return unit_run_suite(suite);
}

#define UNIT_RUN(name, ...)                                                   \
    unit_run(name, (const TTest *const[]){__VA_ARGS__},                       \
             sizeof((const TTest *const[]){__VA_ARGS__}) / sizeof(const TTest *))

#endif
