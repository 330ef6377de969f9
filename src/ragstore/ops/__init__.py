"""Operations that run inside the server: scheduled maintenance."""
