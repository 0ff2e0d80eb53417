/* sdl-bench -- placeholder during development: replaced by the real tool. */
int main(void) { return 2; }
