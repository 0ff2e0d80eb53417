/* placeholder: being written */ typedef int sdlk_placeholder_denoiser;
