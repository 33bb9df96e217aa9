#ifndef GREET_H
#define GREET_H
/* Writes a greeting for `who` to stdout; returns the number of bytes written. */
int greet(const char *who);
const char *greet_version(void);
#endif
