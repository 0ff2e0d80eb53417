/* placeholder: being written */ typedef int sdlk_placeholder_refine;
