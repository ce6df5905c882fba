# A minimal Debian made by debootstrap (devtools/standins.py), as an image for
# the platform it was made for. `docker import` would label it with the
# engine's own architecture; a build from scratch labels it with --platform.
FROM scratch
ADD rootfs.tar /
CMD ["bash"]
