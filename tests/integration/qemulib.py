"""The environment the QEMU guest tests share: the test image (with
banger-agent), a daemon that boots QEMU guests without templates and,
when asked, one VM created there for the module's steps."""
from lifecycle import env_with_test_image


def qemu_env(tmp_path_factory, name, vm=None):
    """A module fixture's generator: the environment (named name), with vm
    created (1 vCPU, 256M, a 64M work disk) when given; torn down after."""
    e = env_with_test_image(tmp_path_factory, name)
    try:
        e.write_config('default_vmm = "qemu"\nvm_templates = false\n')
        e.banger("daemon", "stop")  # the next command starts one that reads the config
        if vm:
            e.banger("vm", "create", "--name", vm, "--image", "test", "--vcpu", "1", "--memory", "256M",
                     "--disk-size", "64M")
        yield e
    finally:
        e.teardown()
