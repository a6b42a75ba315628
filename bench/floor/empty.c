/* RSS floor: a dynamically linked C program that does nothing (glibc and
 * ld.so only). Prints "listening on -" once resident, then sleeps. */
#include <stdio.h>
#include <unistd.h>

int
main(void)
{
    printf("listening on -\n");
    fflush(stdout);
    pause();
    return 0;
}
