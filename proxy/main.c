#include <stdio.h>
int main(void) { puts("cutover " CUTOVER_VERSION); return 0; }
